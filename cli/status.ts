// `ktv status --tracker URL`: the cluster at a glance, for an operator at 9 pm.
import type { ClusterView } from '../common/contracts.js';
import { rpc } from '../common/http.js';
import { parse, trackerUrls, UsageError } from './args.js';

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}

export function renderStatus(view: ClusterView, trackerUrl: string): string {
  const lines: string[] = [];
  lines.push(`tracker ${trackerUrl}  ${view.leader ? 'leader' : 'standby'}  epoch ${view.epoch}`);
  const alive = view.nodes.filter((n) => n.state === 'alive').length;
  lines.push(`nodes ${alive}/${view.nodes.length} alive   songs ${view.songs}`);
  const rows: string[][] = [['NODE', 'STATE', 'URL', 'DISK', 'DISK STATE', 'FREE', 'BLOBS', 'WHY']];
  for (const node of view.nodes) {
    const nodeState = node.state === 'dead' ? `dead ${Math.round(node.lastHeartbeatAgoMs / 1000)}s` : node.state;
    if (node.disks.length === 0) rows.push([node.id, nodeState, node.url, '-', '-', '-', '-', '']);
    node.disks.forEach((d, i) =>
      rows.push([i === 0 ? node.id : '', i === 0 ? nodeState : '', i === 0 ? node.url : '', d.id, d.state, formatBytes(d.freeBytes), String(d.blobs), d.reason]),
    );
  }
  lines.push(table(rows));
  const b = view.blobs;
  lines.push(`blobs ${b.total} (${formatBytes(b.bytes)})   under-replicated ${b.underReplicated}   lost ${b.lost}`);
  const r = view.repair;
  lines.push(`repair queued ${r.queued}   in flight ${r.inFlight}   done ${r.done}   failed ${r.failed}`);
  if (view.gc) {
    const g = view.gc;
    lines.push(`gc orphans ${g.orphans}   deleted ${g.deleted} (${formatBytes(g.deletedBytes)})${g.blocked ? `   paused: ${g.blocked}` : ''}`);
  }
  if (b.lost > 0) lines.push(`WARNING: ${b.lost} blob(s) have no live replica`);
  return lines.join('\n');
}

export async function runStatus(argv: string[]): Promise<number> {
  const { values } = parse(argv, { tracker: { type: 'string' }, json: { type: 'boolean' } });
  const trackers = trackerUrls(values.tracker);
  const failures: string[] = [];
  let best: { view: ClusterView; url: string } | undefined;
  for (const url of trackers) {
    try {
      const view = await rpc<ClusterView>(url, '/api/v1/cluster', { timeoutMs: 3000 });
      if (!best || (view.leader && !best.view.leader)) best = { view, url };
      if (view.leader) break;
    } catch (error) {
      failures.push((error as Error).message);
    }
  }
  if (!best) throw new UsageError(`no tracker answered: ${failures.join('; ')}`);
  process.stdout.write(values.json ? JSON.stringify(best.view, null, 2) + '\n' : renderStatus(best.view, best.url) + '\n');
  return best.view.blobs.lost > 0 ? 1 : 0;
}
