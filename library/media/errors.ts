// One error type for everything the media pipeline refuses or fails at. The message is ONE line
// a venue operator can act on (the CLI prints it as is); ffmpeg's own words go in stderrTail.
export const MEDIA_ERROR_CODES = [
  'not-media', // ffprobe cannot read it, no streams, text or random bytes, container not allowed
  'truncated', // a container we recognise with its index or tail missing
  'corrupt', // readable header, but decoding fails
  'no-video',
  'no-audio',
  'too-long',
  'too-short',
  'too-big',
  'unsupported-video-codec',
  'unsupported-audio-codec',
  'ambiguous-audio', // several audio streams and nothing says which is 原唱 / 伴唱
  'needs-vocal-channel', // one stereo stream: the roles are its channels, and we were not told which
  'audio-layout', // a layout that cannot hold two roles (one mono stream, 5.1 split, …)
  'bad-option', // an option that contradicts the file or itself
  'bad-playlist', // a playlist outside the subset we emit
  'segment-mismatch', // renditions not cut on the same boundaries
  'timeout', // a deadline killed ffmpeg/ffprobe
  'aborted', // the caller cancelled
  'ffmpeg-failed', // ffmpeg/ffprobe exited non-zero on an input that passed probing
  'io', // a file-system operation on our own files failed
] as const;
export type MediaErrorCode = (typeof MEDIA_ERROR_CODES)[number];

export class MediaError extends Error {
  override readonly name = 'MediaError';
  readonly code: MediaErrorCode;
  /** Last lines of ffmpeg/ffprobe stderr, when a tool run is behind the error. */
  readonly stderrTail: string[];

  constructor(code: MediaErrorCode, message: string, options: { stderrTail?: string[]; cause?: unknown } = {}) {
    super(oneLine(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.stderrTail = options.stderrTail ?? [];
  }
}

export function isMediaError(value: unknown): value is MediaError {
  return value instanceof MediaError;
}

/** Collapse whitespace so a message (or a quoted tool line) never spans lines. */
export function oneLine(text: string, maxChars = 300): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > maxChars ? flat.slice(0, maxChars - 1) + '…' : flat;
}

/** The last non-empty stderr line, for a one-line message; '' when there is none. */
export function lastLine(lines: readonly string[]): string {
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.trim();
    if (line) return line;
  }
  return '';
}
