// The health probe's I/O: write a small file into the disk's tmp/, fsync it, read it back through
// a new handle, compare, delete. The caller puts one deadline on the whole thing (a hung disk
// must not hold the probe loop) and keeps at most one probe in flight per disk.
//
// A disk that vanished is probed cheaply: its root is stat'ed and nothing else happens while it
// is missing. When the directory is back, its meta file must name this very disk (an empty
// mount point, or another disk mounted there, is not our disk) before anything is written to it.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { KIND_DIRS, META_FILE, quarantineDir, tmpDir } from './layout.js';

export class ProbeError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** Runs one probe; resolves when everything matched, throws (ProbeError or the fs error) otherwise. */
export async function probeOnce(root: string, diskId: string, bytes: number, checkIdentity: boolean): Promise<void> {
  const info = await stat(root);
  if (!info.isDirectory()) throw new ProbeError('ENOTDIR', `${root} is not a directory`);
  if (checkIdentity) {
    let text: string;
    try {
      text = await readFile(join(root, META_FILE), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ProbeError('ENOENT', `${META_FILE} is missing: not this disk (yet)`);
      throw error;
    }
    let found: unknown;
    try {
      found = (JSON.parse(text) as { diskId?: unknown }).diskId;
    } catch {
      throw new ProbeError('EBADMETA', `${META_FILE} is not valid JSON`);
    }
    if (found !== diskId) throw new ProbeError('EOTHERDISK', `${META_FILE} names disk ${String(found)}, not ${diskId}`);
    // Our disk is back; its working directories may not be (an operator restored only blobs/).
    for (const dir of [tmpDir(root), quarantineDir(root), ...Object.values(KIND_DIRS).map((d) => join(root, d))]) await mkdir(dir, { recursive: true });
  }
  const path = join(tmpDir(root), `probe.${randomBytes(6).toString('hex')}.tmp`);
  const data = randomBytes(bytes);
  const out = await open(path, 'wx', 0o644);
  try {
    try {
      await out.writeFile(data);
      await out.sync();
    } finally {
      await out.close();
    }
    const back = await readFile(path);
    if (!back.equals(data)) throw new ProbeError('EBADMSG', `probe file read back differs from what was written (${back.length}/${data.length} bytes)`);
  } finally {
    await unlink(path).catch(() => {});
  }
}
