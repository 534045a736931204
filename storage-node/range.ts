// HTTP Range requests (RFC 9110 §14), the subset a media server needs. Pure.
//
// One range per request: a player asks for one byte range per segment. A multi-range request
// (`bytes=0-1,5-9`) is answered 416 with a clear error rather than with multipart/byteranges,
// which no client of ours reads; ignoring the header and sending a whole multi-GiB rendition
// would be the worse surprise.

export type RangeAnswer =
  | { kind: 'full' }
  /** Inclusive byte positions, as in Content-Range. */
  | { kind: 'partial'; startByte: number; endByte: number }
  | { kind: 'unsatisfiable' }
  | { kind: 'multiple' };

const SPEC = /^\s*(\d*)\s*-\s*(\d*)\s*$/;

export function parseRange(header: string | undefined, sizeBytes: number): RangeAnswer {
  if (header === undefined || header.trim() === '') return { kind: 'full' };
  const m = /^\s*bytes\s*=(.*)$/i.exec(header);
  // Unknown units: ignore the header (RFC 9110 §14.2).
  if (!m) return { kind: 'full' };
  const specs = m[1]!.split(',').filter((s) => s.trim() !== '');
  if (specs.length === 0) return { kind: 'full' };
  if (specs.length > 1) return { kind: 'multiple' };
  const parts = SPEC.exec(specs[0]!);
  if (!parts) return { kind: 'full' }; // syntactically invalid: ignored, as the RFC says
  const [, a, b] = parts;
  if (a === '' && b === '') return { kind: 'full' };
  const first = a === '' ? undefined : Number(a);
  const last = b === '' ? undefined : Number(b);
  if ((first !== undefined && !Number.isSafeInteger(first)) || (last !== undefined && !Number.isSafeInteger(last))) {
    return { kind: 'unsatisfiable' };
  }
  if (first === undefined) {
    // Suffix: the last `last` bytes.
    if (last === 0 || sizeBytes === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', startByte: Math.max(0, sizeBytes - last!), endByte: sizeBytes - 1 };
  }
  if (last !== undefined && last < first) return { kind: 'full' }; // invalid: ignored
  if (first >= sizeBytes) return { kind: 'unsatisfiable' };
  return { kind: 'partial', startByte: first, endByte: Math.min(last ?? sizeBytes - 1, sizeBytes - 1) };
}
