// `ktv disk drain|mask|unmask NODE DISK [--note TEXT]` and `ktv node drain|undrain NODE`: the
// operator's commands (admin token). Any tracker forwards them, signed, to the node, which keeps
// the setting; the answer is what each disk says now. One line per disk on success; one line on
// stderr and exit 1 on a refusal (unknown node, node unreachable), 2 on bad usage.
import type { DiskStatus } from '../common/contracts.js';
import { ID_RE } from '../common/contracts.js';
import { rpc, RpcError } from '../common/http.js';
import { parse, requireEnvSecret, trackerUrls, UsageError } from './args.js';

interface OperatorAnswer {
  node: string;
  disks: Array<{ disk: string; ok: boolean; status?: DiskStatus; error?: string }>;
}

const OPTIONS = { tracker: { type: 'string' }, note: { type: 'string' }, json: { type: 'boolean' } } as const;

function checkId(value: string | undefined, what: string, usage: string): string {
  if (value === undefined) throw new UsageError(usage);
  if (!ID_RE.test(value)) throw new UsageError(`${what} "${value}": expected 1-64 characters of A-Z a-z 0-9 _ . -`);
  return value;
}

/** Posts to the first tracker that answers at all; an HTTP refusal from a tracker is final (it is the same answer everywhere). */
async function postToTrackers(trackers: string[], path: string, body: unknown, adminToken: string): Promise<OperatorAnswer> {
  const unreachable: string[] = [];
  for (const url of trackers) {
    try {
      // Longer than the tracker's own rpc deadline to the node (5 s per disk by default).
      return await rpc<OperatorAnswer>(url, path, { method: 'POST', body, adminToken, timeoutMs: 30_000 });
    } catch (error) {
      if (error instanceof RpcError && error.status !== 0) throw new Error(error.message.replace(/^POST \S+: /, ''));
      unreachable.push((error as Error).message);
    }
  }
  throw new Error(`no tracker answered: ${unreachable.join('; ')}`);
}

export function describeDisk(node: string, d: OperatorAnswer['disks'][number]): string {
  if (!d.ok) return `${node}/${d.disk}: FAILED ${d.error ?? ''}`.trimEnd();
  if (!d.status) return `${node}/${d.disk}: ok`;
  const s = d.status;
  const operator = s.operator && s.operator !== 'none' ? `  operator ${s.operator}` : '';
  return `${node}/${d.disk}: ${s.state}${operator}${s.reason ? `  (${s.reason})` : ''}`;
}

function print(answer: OperatorAnswer, json: boolean | undefined, emptyText: string): number {
  if (json) process.stdout.write(JSON.stringify(answer) + '\n');
  else if (answer.disks.length === 0) process.stdout.write(`${answer.node}: ${emptyText}\n`);
  else for (const d of answer.disks) process.stdout.write(describeDisk(answer.node, d) + '\n');
  const failed = answer.disks.filter((d) => !d.ok);
  if (failed.length > 0 && !json) process.stderr.write(`ktv: ${failed.length} of ${answer.disks.length} disk(s) did not take the command\n`);
  return failed.length > 0 ? 1 : 0;
}

export async function runDisk(argv: string[]): Promise<number> {
  const usage = 'ktv disk drain|mask|unmask NODE DISK --tracker URL [--note TEXT]';
  const { values, positionals } = parse(argv, OPTIONS, true);
  const [action, nodeArg, diskArg, ...extra] = positionals;
  if (action !== 'drain' && action !== 'mask' && action !== 'unmask') throw new UsageError(action === undefined ? usage : `unknown disk action "${action}"; ${usage}`);
  const node = checkId(nodeArg, 'node', usage);
  const disk = checkId(diskArg, 'disk', usage);
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"; ${usage}`);
  if (values.note !== undefined && values.note.length > 200) throw new UsageError('--note: at most 200 characters');
  const trackers = trackerUrls(values.tracker);
  const token = requireEnvSecret('KTV_ADMIN_TOKEN');
  const path = `/api/v1/admin/disks/${encodeURIComponent(node)}/${encodeURIComponent(disk)}`;
  const answer = await postToTrackers(trackers, path, { action, note: values.note ?? '' }, token);
  return print(answer, values.json, 'nothing to do');
}

export async function runNode(argv: string[]): Promise<number> {
  const usage = 'ktv node drain|undrain NODE --tracker URL [--note TEXT]';
  const { values, positionals } = parse(argv, OPTIONS, true);
  const [action, nodeArg, ...extra] = positionals;
  if (action !== 'drain' && action !== 'undrain') throw new UsageError(action === undefined ? usage : `unknown node action "${action}"; ${usage}`);
  const node = checkId(nodeArg, 'node', usage);
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"; ${usage}`);
  if (values.note !== undefined && values.note.length > 200) throw new UsageError('--note: at most 200 characters');
  const trackers = trackerUrls(values.tracker);
  const token = requireEnvSecret('KTV_ADMIN_TOKEN');
  const answer = await postToTrackers(trackers, `/api/v1/admin/nodes/${encodeURIComponent(node)}/${action}`, { note: values.note ?? '' }, token);
  return print(answer, values.json, 'no disk was drained by the operator; nothing to undo');
}
