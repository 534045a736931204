// The RFC 6381 codec string of our H.264 output, read from the avcC box of the init segment:
// profile_idc, the constraint-flags byte and level_idc exactly as the SPS has them. ffprobe's
// profile name + level lose the constraint flags (Constrained Baseline is 42C0xx, not 4200xx).
import { open } from 'node:fs/promises';
import { MediaError } from './errors.js';

interface Box {
  type: string;
  /** Offset of the payload (after the header) and its end, in the buffer. */
  start: number;
  end: number;
}

function* boxes(buf: Uint8Array, from: number, to: number): Generator<Box> {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = from;
  while (pos + 8 <= to) {
    let size = view.getUint32(pos);
    const type = String.fromCharCode(buf[pos + 4]!, buf[pos + 5]!, buf[pos + 6]!, buf[pos + 7]!);
    let header = 8;
    if (size === 1) {
      if (pos + 16 > to) return;
      size = Number(view.getBigUint64(pos + 8));
      header = 16;
    } else if (size === 0) {
      size = to - pos;
    }
    if (size < header || pos + size > to) return; // malformed or cut: stop, the caller reports
    yield { type, start: pos + header, end: pos + size };
    pos += size;
  }
}

function child(buf: Uint8Array, parent: { start: number; end: number }, type: string, skip = 0): Box | undefined {
  for (const b of boxes(buf, parent.start + skip, parent.end)) if (b.type === type) return b;
  return undefined;
}

const hex2 = (n: number): string => n.toString(16).toUpperCase().padStart(2, '0');

/**
 * `avc1.PPCCLL` of the first H.264 track in an MP4 init segment (moov › trak › mdia › minf › stbl
 * › stsd › avc1|avc3 › avcC). Undefined when there is no H.264 track.
 */
export function avcCodecString(init: Uint8Array): string | undefined {
  const moov = child(init, { start: 0, end: init.length }, 'moov');
  if (!moov) return undefined;
  for (const trak of boxes(init, moov.start, moov.end)) {
    if (trak.type !== 'trak') continue;
    let node: Box | undefined = trak;
    for (const type of ['mdia', 'minf', 'stbl']) node = node && child(init, node, type);
    // stsd is a full box: version/flags (4) and entry_count (4) precede the entries.
    const stsd = node && child(init, node, 'stsd');
    if (!stsd) continue;
    for (const entry of boxes(init, stsd.start + 8, stsd.end)) {
      if (entry.type !== 'avc1' && entry.type !== 'avc3') continue;
      // A VisualSampleEntry has 78 bytes of fixed fields before its child boxes.
      const avcC = child(init, entry, 'avcC', 78);
      if (!avcC || avcC.end - avcC.start < 4) return undefined;
      const profile = init[avcC.start + 1]!;
      const constraints = init[avcC.start + 2]!;
      const level = init[avcC.start + 3]!;
      return `${entry.type}.${hex2(profile)}${hex2(constraints)}${hex2(level)}`;
    }
  }
  return undefined;
}

/** Reads a byte range of a file (the init segment) with a size cap. */
export async function readRange(file: string, offsetBytes: number, lengthBytes: number, maxBytes: number): Promise<Uint8Array> {
  if (lengthBytes > maxBytes) throw new MediaError('bad-playlist', `init segment of ${lengthBytes} bytes is larger than ${maxBytes}`);
  const handle = await open(file, 'r');
  try {
    const buf = Buffer.alloc(lengthBytes);
    const { bytesRead } = await handle.read(buf, 0, lengthBytes, offsetBytes);
    if (bytesRead !== lengthBytes) throw new MediaError('bad-playlist', `byte range ${lengthBytes}@${offsetBytes} runs past the end of ${file}`);
    return buf;
  } finally {
    await handle.close();
  }
}
