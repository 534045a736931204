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

/** 75 s → "1m15s"; for ages and ETAs. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${h % 24}h`;
}

type ViewDisk = ClusterView['nodes'][number]['disks'][number];
type Drain = NonNullable<ViewDisk['drain']>;

function drainText(d: Drain | undefined): string {
  if (!d) return '';
  return d.safeToRemove ? 'SAFE TO REMOVE' : `${d.remainingBlobs} blobs (${formatBytes(d.remainingBytes)}) left`;
}

function probeText(d: ViewDisk): string {
  const p = d.probe;
  if (!p || !p.lastAt) return '-';
  const last = p.lastMs < 0 ? 'FAILED' : `${Math.round(p.lastMs)}ms`;
  return `${last} (norm ${Math.round(p.normalMs)}ms${p.recentFaults > 0 ? `, ${p.recentFaults} fault${p.recentFaults > 1 ? 's' : ''}` : ''})`;
}

function scrubText(d: ViewDisk, nowMs: number): string {
  const parts: string[] = [];
  if (d.verifying) parts.push(`verifying ${d.verifying.checked}/${d.verifying.total}`);
  const sc = d.scrub;
  if (sc) {
    const last = sc.lastPassAt ? `last pass ${formatDuration(nowMs - Date.parse(sc.lastPassAt))} ago` : 'first pass';
    parts.push(`${sc.passVerified} checked, ${last}${sc.corruptFound > 0 ? `, ${sc.corruptFound} CORRUPT` : ''}`);
  }
  return parts.join('; ') || '-';
}

export function renderStatus(view: ClusterView, trackerUrl: string, nowMs = Date.now()): string {
  const lines: string[] = [];
  const b = view.blobs;
  const lostList = view.lostBlobs ?? [];
  // Loud first: an operator glancing at the screen must not miss a lost song.
  if (b.lost > 0) {
    lines.push(`!!! LOST: ${b.lost} blob(s) have no readable copy on any node !!!`);
    for (const l of lostList.slice(0, 20)) {
      lines.push(`!!!   ${l.id.slice(0, 16)}…  ${l.kind}  ${formatBytes(l.sizeBytes)}  lost ${formatDuration(l.lostSinceAgoMs)}  songs: ${l.songs.length > 0 ? l.songs.join(', ') : '(none known)'}`);
    }
    if (b.lost > Math.min(20, lostList.length)) lines.push(`!!!   … and ${b.lost - Math.min(20, lostList.length)} more (ktv status --json lists up to 100)`);
    lines.push('');
  }
  lines.push(`tracker ${trackerUrl}  ${view.leader ? 'leader' : 'standby'}  epoch ${view.epoch}`);
  const alive = view.nodes.filter((n) => n.state === 'alive').length;
  lines.push(`nodes ${alive}/${view.nodes.length} alive   songs ${view.songs}`);
  const rows: string[][] = [['NODE', 'STATE', 'URL', 'DISK', 'DISK STATE', 'FREE', 'BLOBS', 'PROBE', 'SCRUB', 'READ FAIL', 'DRAIN', 'WHY']];
  for (const node of view.nodes) {
    let nodeState = node.state === 'dead' ? `dead ${Math.round(node.lastHeartbeatAgoMs / 1000)}s` : node.state;
    if (node.drain) nodeState += node.drain.safeToRemove ? ' (drained: SAFE TO REMOVE)' : ' (draining)';
    if (node.disks.length === 0) rows.push([node.id, nodeState, node.url, '-', '-', '-', '-', '-', '-', '-', '-', '']);
    node.disks.forEach((d, i) => {
      const state = d.operator && d.operator !== 'none' ? `${d.state} (operator ${d.operator})` : d.state;
      rows.push([
        i === 0 ? node.id : '', i === 0 ? nodeState : '', i === 0 ? node.url : '', d.id, state, formatBytes(d.freeBytes), String(d.blobs),
        probeText(d), scrubText(d, nowMs), d.readFailures ? String(d.readFailures) : '-', drainText(d.drain) || '-', d.reason,
      ]);
    });
    if (node.drain && !node.drain.safeToRemove) rows.push(['', '', '', '(node)', 'draining', '', '', '', '', '', drainText(node.drain), '']);
  }
  lines.push(table(rows));
  lines.push(`blobs ${b.total} (${formatBytes(b.bytes)})   under-replicated ${b.underReplicated}   lost ${b.lost}`);
  const r = view.repair;
  lines.push(`repair queued ${r.queued}${r.queuedBytes !== undefined ? ` (${formatBytes(r.queuedBytes)})` : ''}   in flight ${r.inFlight}   done ${r.done}   failed ${r.failed}${r.copiedBytes !== undefined ? `   copied ${formatBytes(r.copiedBytes)}` : ''}`);
  if (r.budget) {
    const rate = r.rateBytesPerSec !== undefined ? `${formatBytes(r.rateBytesPerSec)}/s` : '-';
    const eta = r.etaS === null || r.etaS === undefined ? '-' : formatDuration(r.etaS * 1000);
    lines.push(
      `repair rate ${rate} (last minute)   ETA ${eta}   budget ${r.budget.window === 'maintenance' ? 'maintenance window' : 'business hours'}: ` +
        `${formatBytes(r.budget.clusterBytesPerSec)}/s cluster, ${formatBytes(r.budget.nodeBytesPerSec)}/s per node`,
    );
  }
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
