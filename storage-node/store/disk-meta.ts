// Disk identity. `DIR/ktv-disk.json` {diskId, nodeId, createdAt} gives every disk a stable id
// (the tracker indexes replicas by node + disk) and tells which node it belongs to, so a node
// restarted without --id keeps its identity.
import { mkdir, open, readFile, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { DISK_OPERATOR_SETTINGS, safeId } from '../../common/contracts.js';
import { randomId } from '../../common/ids.js';
import { closeQuietly } from './deadline.js';
import type { Disk } from './disk.js';
import { KIND_DIRS, META_FILE, quarantineDir, tmpDir } from './layout.js';

/** The operator's setting lives on the disk itself, so it follows the disk and survives restarts. */
export const diskOperatorMeta = z.object({ setting: z.enum(DISK_OPERATOR_SETTINGS), note: z.string().max(200), at: z.string().max(64) });
export const diskMetaSchema = z.object({ diskId: safeId, nodeId: safeId, createdAt: z.string().max(64), operator: diskOperatorMeta.optional() });
export type DiskMeta = z.infer<typeof diskMetaSchema>;

/** The node id: the one given, else the one the disks already carry, else a new one. */
export function resolveNodeId(given: string | undefined, fromDisks: string[], makeId: () => string): { nodeId: string; conflict: boolean } {
  const distinct = [...new Set(fromDisks)];
  if (given) return { nodeId: given, conflict: distinct.some((id) => id !== given) };
  if (distinct.length > 0) return { nodeId: distinct[0]!, conflict: distinct.length > 1 };
  return { nodeId: makeId(), conflict: false };
}

/** Creates the directory tree; returns the meta file's content, or undefined when there is none. */
export async function prepareDiskDir(disk: Pick<Disk, 'op'>, root: string): Promise<DiskMeta | undefined> {
  const dirs = [root, tmpDir(root), quarantineDir(root), ...Object.values(KIND_DIRS).map((d) => join(root, d))];
  for (const dir of dirs) await disk.op(`mkdir ${dir}`, () => mkdir(dir, { recursive: true }));
  let text: string;
  try {
    text = await disk.op('read disk meta', () => readFile(join(root, META_FILE), 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${join(root, META_FILE)} is not valid JSON; fix or remove it`);
  }
  const meta = diskMetaSchema.safeParse(parsed);
  if (!meta.success) throw new Error(`${join(root, META_FILE)} is malformed; fix or remove it`);
  return meta.data;
}

/** Writes the meta file atomically (temp file, fsync, rename, fsync the directory). */
export async function writeDiskMeta(disk: Pick<Disk, 'op'>, root: string, meta: DiskMeta): Promise<void> {
  const tmp = join(tmpDir(root), `${META_FILE}.${randomId('m')}`);
  const fh = await disk.op('open meta temp', () => open(tmp, 'w', 0o644), { onLate: closeQuietly });
  try {
    await disk.op('write meta', () => fh.writeFile(JSON.stringify(meta, null, 2) + '\n'));
    await disk.op('fsync meta', () => fh.sync());
  } finally {
    closeQuietly(fh);
  }
  await disk.op('rename meta', () => rename(tmp, join(root, META_FILE)));
  await fsyncDir(disk, root);
}

export async function fsyncDir(disk: Pick<Disk, 'op'>, dir: string): Promise<void> {
  const fh = await disk.op(`open dir ${dir}`, () => open(dir, 'r'), { notFoundIsFault: true, onLate: closeQuietly });
  try {
    await disk.op(`fsync dir ${dir}`, () => fh.sync());
  } finally {
    closeQuietly(fh);
  }
}

/** Removes temp files older than `maxAgeMs` (0: all) except those still being written. */
export async function removeStaleTemps(disk: Pick<Disk, 'op'>, root: string, maxAgeMs: number, inUse: ReadonlySet<string>): Promise<number> {
  const dir = tmpDir(root);
  const names = await disk.op('list tmp', () => readdir(dir));
  let removed = 0;
  for (const name of names) {
    const path = join(dir, name);
    if (inUse.has(path)) continue;
    if (maxAgeMs > 0) {
      const info = await disk.op('stat temp', () => stat(path)).catch(() => undefined);
      if (!info || Date.now() - info.mtimeMs < maxAgeMs) continue;
    }
    await disk.op('remove temp', () => unlink(path)).then(() => removed++, () => {});
  }
  return removed;
}
