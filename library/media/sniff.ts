// What the first bytes of a file look like. Only used to word a refusal: when ffprobe cannot read
// a file, "truncated MP4" and "a text file" call for different actions by the operator.
import { open } from 'node:fs/promises';

export type SniffKind = 'mp4' | 'matroska' | 'mpeg-ps' | 'mpeg-ts' | 'avi' | 'flv' | 'text' | 'empty' | 'unknown';

export const SNIFF_BYTES = 4096;

const MP4_BOX_TYPES = new Set(['ftyp', 'moov', 'mdat', 'free', 'skip', 'wide', 'pnot']);

/** Pure classification of a file's first bytes. */
export function sniffBytes(head: Uint8Array): SniffKind {
  if (head.length === 0) return 'empty';
  const ascii = (from: number, to: number): string => String.fromCharCode(...head.subarray(from, to));
  if (head.length >= 8 && MP4_BOX_TYPES.has(ascii(4, 8))) return 'mp4';
  if (head.length >= 4 && head[0] === 0x1a && head[1] === 0x45 && head[2] === 0xdf && head[3] === 0xa3) return 'matroska';
  if (head.length >= 4 && head[0] === 0 && head[1] === 0 && head[2] === 1 && (head[3] === 0xba || head[3] === 0xb3)) return 'mpeg-ps';
  if (head.length > 188 && head[0] === 0x47 && head[188] === 0x47) return 'mpeg-ts';
  if (head.length >= 12 && ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'AVI ') return 'avi';
  if (head.length >= 3 && ascii(0, 3) === 'FLV') return 'flv';
  if (looksLikeText(head)) return 'text';
  return 'unknown';
}

/** Valid UTF-8 (allowing a cut last character), no NUL, and almost all printable. */
function looksLikeText(head: Uint8Array): boolean {
  if (head.includes(0)) return false;
  let text: string;
  try {
    // Drop up to 3 trailing bytes: the sniff window may cut a multi-byte character.
    text = new TextDecoder('utf-8', { fatal: true }).decode(trimPartialUtf8(head));
  } catch {
    return false;
  }
  let printable = 0;
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (c === 9 || c === 10 || c === 13 || (c >= 32 && c !== 127)) printable++;
  }
  return printable >= 0.95 * [...text].length;
}

function trimPartialUtf8(bytes: Uint8Array): Uint8Array {
  let end = bytes.length;
  for (let i = 1; i <= 3 && end - i >= 0; i++) {
    const b = bytes[end - i]!;
    if ((b & 0xc0) === 0x80) continue; // continuation byte: keep looking for the lead
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    if (need > i) end -= i;
    break;
  }
  return bytes.subarray(0, end);
}

/** Reads at most SNIFF_BYTES from the start of a file. */
export async function readHead(file: string): Promise<Uint8Array> {
  const handle = await open(file, 'r');
  try {
    const buf = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await handle.read(buf, 0, SNIFF_BYTES, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

export const SNIFF_NAMES: Record<SniffKind, string> = {
  mp4: 'an MP4/MOV file',
  matroska: 'a Matroska/WebM file',
  'mpeg-ps': 'an MPEG program stream (.mpg/.vob)',
  'mpeg-ts': 'an MPEG transport stream (.ts)',
  avi: 'an AVI file',
  flv: 'an FLV file',
  text: 'a text file',
  empty: 'an empty file',
  unknown: 'unrecognised bytes',
};
