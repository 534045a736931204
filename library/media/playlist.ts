// HLS playlists: a STRICT parser for the media-playlist subset we emit (one fMP4 file per
// rendition, byte-range segments, VOD) and a writer for our master playlist. Strict on purpose:
// anything outside the subset means packaging did something we did not plan for, and the
// streamer serves byte ranges from these numbers.
import { MediaError } from './errors.js';

export interface ByteRange {
  offsetBytes: number;
  lengthBytes: number;
}

export interface MediaSegment extends ByteRange {
  uri: string;
  durationS: number;
  /** Sum of the EXTINF durations before this segment. */
  startS: number;
}

export interface MediaPlaylist {
  version: number;
  targetDurationS: number;
  mediaSequence: number;
  playlistType?: 'VOD' | 'EVENT';
  independentSegments: boolean;
  /** The init segment (EXT-X-MAP); our subset requires a byte range. */
  map: ByteRange & { uri: string };
  segments: MediaSegment[];
  totalDurationS: number;
}

/** A resource next to the playlist: a plain file name, nothing that climbs or leaves the folder. */
const SAFE_URI_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
export const MAX_PLAYLIST_SEGMENTS = 100_000;

function fail(lineNo: number, why: string): never {
  throw new MediaError('bad-playlist', `playlist line ${lineNo}: ${why}`);
}

function parseInteger(text: string, lineNo: number, what: string): number {
  if (!/^\d{1,15}$/.test(text)) fail(lineNo, `${what} must be a non-negative integer, got "${text}"`);
  return Number(text);
}

/** `n[@o]` (EXT-X-BYTERANGE, and the BYTERANGE attribute of EXT-X-MAP). */
function parseByteRange(text: string, lineNo: number, previousEnd: number | undefined): ByteRange {
  const m = /^(\d{1,15})(?:@(\d{1,15}))?$/.exec(text);
  if (!m) fail(lineNo, `bad byte range "${text}"`);
  const lengthBytes = Number(m[1]);
  if (lengthBytes === 0) fail(lineNo, 'empty byte range');
  if (m[2] === undefined && previousEnd === undefined) fail(lineNo, 'byte range without offset and no previous range');
  return { lengthBytes, offsetBytes: m[2] === undefined ? previousEnd! : Number(m[2]) };
}

/** Attribute list `KEY=VALUE,KEY="quoted"` (RFC 8216 4.2). */
export function parseAttributes(text: string, lineNo: number): Map<string, string> {
  const attrs = new Map<string, string>();
  const re = /([A-Z0-9-]+)=("[^"\r\n]*"|[^",\s]*)(,|$)/gy;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) fail(lineNo, `bad attribute list "${text}"`);
    const value = m[2]!.startsWith('"') ? m[2]!.slice(1, -1) : m[2]!;
    if (attrs.has(m[1]!)) fail(lineNo, `duplicate attribute ${m[1]}`);
    attrs.set(m[1]!, value);
    pos = re.lastIndex;
    if (m[3] === '' && pos < text.length) fail(lineNo, `bad attribute list "${text}"`);
  }
  return attrs;
}

function checkUri(uri: string, lineNo: number): string {
  if (!SAFE_URI_RE.test(uri)) fail(lineNo, `URI "${uri}" is not a plain file name`);
  return uri;
}

/**
 * Parses a media playlist of our subset: EXTM3U, VERSION, TARGETDURATION, MEDIA-SEQUENCE,
 * PLAYLIST-TYPE, INDEPENDENT-SEGMENTS, MAP with BYTERANGE, then EXTINF + BYTERANGE + URI per
 * segment, ENDLIST. All segments and the map name the same file, and the ranges are contiguous
 * (map, then segments back to back) — what a single-file rendition is. Throws 'bad-playlist'.
 */
export function parseMediaPlaylist(text: string): MediaPlaylist {
  const lines = text.split(/\r?\n/);
  if (lines[0] !== '#EXTM3U') fail(1, 'must start with #EXTM3U');
  let version: number | undefined;
  let targetDurationS: number | undefined;
  let mediaSequence = 0;
  let playlistType: MediaPlaylist['playlistType'];
  let independentSegments = false;
  let map: MediaPlaylist['map'] | undefined;
  let ended = false;
  const segments: MediaSegment[] = [];
  let pendingDurationS: number | undefined;
  let pendingRange: ByteRange | undefined;
  let nextOffset: number | undefined;
  let startS = 0;

  for (let i = 1; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!.trim();
    if (line === '') continue;
    if (ended) fail(lineNo, 'content after #EXT-X-ENDLIST');
    if (!line.startsWith('#')) {
      // A segment URI closes the segment started by EXTINF.
      if (pendingDurationS === undefined) fail(lineNo, 'URI without #EXTINF');
      if (!pendingRange) fail(lineNo, 'segment without #EXT-X-BYTERANGE (our renditions are single files)');
      if (!map) fail(lineNo, 'segment before #EXT-X-MAP');
      const uri = checkUri(line, lineNo);
      if (uri !== map.uri) fail(lineNo, `segment file "${uri}" differs from the map's "${map.uri}"`);
      if (pendingRange.offsetBytes !== nextOffset) fail(lineNo, `segment starts at byte ${pendingRange.offsetBytes}, expected ${nextOffset}`);
      if (segments.length >= MAX_PLAYLIST_SEGMENTS) fail(lineNo, `more than ${MAX_PLAYLIST_SEGMENTS} segments`);
      segments.push({ uri, ...pendingRange, durationS: pendingDurationS, startS });
      startS += pendingDurationS;
      nextOffset = pendingRange.offsetBytes + pendingRange.lengthBytes;
      pendingDurationS = undefined;
      pendingRange = undefined;
      continue;
    }
    if (!line.startsWith('#EXT')) continue; // a comment
    const colon = line.indexOf(':');
    const tag = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1);
    switch (tag) {
      case '#EXT-X-VERSION':
        if (version !== undefined) fail(lineNo, 'duplicate #EXT-X-VERSION');
        version = parseInteger(value, lineNo, 'version');
        break;
      case '#EXT-X-TARGETDURATION':
        if (targetDurationS !== undefined) fail(lineNo, 'duplicate #EXT-X-TARGETDURATION');
        targetDurationS = parseInteger(value, lineNo, 'target duration');
        break;
      case '#EXT-X-MEDIA-SEQUENCE':
        if (segments.length) fail(lineNo, '#EXT-X-MEDIA-SEQUENCE after a segment');
        mediaSequence = parseInteger(value, lineNo, 'media sequence');
        break;
      case '#EXT-X-PLAYLIST-TYPE':
        if (value !== 'VOD' && value !== 'EVENT') fail(lineNo, `playlist type "${value}"`);
        playlistType = value;
        break;
      case '#EXT-X-INDEPENDENT-SEGMENTS':
        independentSegments = true;
        break;
      case '#EXT-X-MAP': {
        if (map) fail(lineNo, 'more than one #EXT-X-MAP');
        if (segments.length) fail(lineNo, '#EXT-X-MAP after a segment');
        const attrs = parseAttributes(value, lineNo);
        const uri = attrs.get('URI');
        const range = attrs.get('BYTERANGE');
        if (!uri || !range) fail(lineNo, '#EXT-X-MAP needs URI and BYTERANGE');
        for (const key of attrs.keys()) if (key !== 'URI' && key !== 'BYTERANGE') fail(lineNo, `unexpected MAP attribute ${key}`);
        if (!range.includes('@')) fail(lineNo, 'MAP byte range needs an explicit offset');
        const br = parseByteRange(range, lineNo, undefined);
        map = { uri: checkUri(uri, lineNo), ...br };
        nextOffset = br.offsetBytes + br.lengthBytes;
        break;
      }
      case '#EXTINF': {
        if (pendingDurationS !== undefined) fail(lineNo, 'two #EXTINF for one segment');
        const m = /^(\d{1,6}(?:\.\d{1,9})?),.*$/.exec(value);
        if (!m) fail(lineNo, `bad #EXTINF "${value}"`);
        const durationS = Number(m[1]);
        if (!(durationS > 0)) fail(lineNo, 'segment duration must be positive');
        pendingDurationS = durationS;
        break;
      }
      case '#EXT-X-BYTERANGE':
        if (pendingDurationS === undefined) fail(lineNo, '#EXT-X-BYTERANGE before #EXTINF');
        if (pendingRange) fail(lineNo, 'two #EXT-X-BYTERANGE for one segment');
        pendingRange = parseByteRange(value, lineNo, nextOffset);
        break;
      case '#EXT-X-ENDLIST':
        ended = true;
        break;
      default:
        fail(lineNo, `tag ${tag} is outside the subset we emit`);
    }
  }
  if (!ended) fail(lines.length, 'missing #EXT-X-ENDLIST (VOD playlists are complete)');
  if (pendingDurationS !== undefined) fail(lines.length, '#EXTINF without a URI');
  if (version === undefined) fail(lines.length, 'missing #EXT-X-VERSION');
  if (targetDurationS === undefined) fail(lines.length, 'missing #EXT-X-TARGETDURATION');
  if (!map) fail(lines.length, 'missing #EXT-X-MAP');
  if (segments.length === 0) fail(lines.length, 'no segments');
  for (const s of segments) {
    // RFC 8216 4.3.3.1: every EXTINF, rounded, is at most the target duration.
    if (Math.round(s.durationS) > targetDurationS) throw new MediaError('bad-playlist', `segment of ${s.durationS} s exceeds target duration ${targetDurationS} s`);
  }
  const out: MediaPlaylist = { version, targetDurationS, mediaSequence, independentSegments, map, segments, totalDurationS: startS };
  if (playlistType) out.playlistType = playlistType;
  return out;
}

/** Writes a media playlist of our subset (the inverse of parseMediaPlaylist). */
export function writeMediaPlaylist(p: MediaPlaylist): string {
  const lines = ['#EXTM3U', `#EXT-X-VERSION:${p.version}`, `#EXT-X-TARGETDURATION:${p.targetDurationS}`, `#EXT-X-MEDIA-SEQUENCE:${p.mediaSequence}`];
  if (p.playlistType) lines.push(`#EXT-X-PLAYLIST-TYPE:${p.playlistType}`);
  if (p.independentSegments) lines.push('#EXT-X-INDEPENDENT-SEGMENTS');
  lines.push(`#EXT-X-MAP:URI=${quoted(checkUri(p.map.uri, 0), 'URI')},BYTERANGE="${p.map.lengthBytes}@${p.map.offsetBytes}"`);
  for (const s of p.segments) {
    lines.push(`#EXTINF:${s.durationS.toFixed(6)},`, `#EXT-X-BYTERANGE:${s.lengthBytes}@${s.offsetBytes}`, checkUri(s.uri, 0));
  }
  lines.push('#EXT-X-ENDLIST');
  return lines.join('\n') + '\n';
}

/**
 * Merges the last segment into the one before. Valid because our segments are contiguous ranges
 * of one file: two moof+mdat fragments back to back are one segment.
 */
export function mergeLastSegment(p: MediaPlaylist): MediaPlaylist {
  if (p.segments.length < 2) return p;
  const prev = p.segments[p.segments.length - 2]!;
  const last = p.segments[p.segments.length - 1]!;
  const merged: MediaSegment = { ...prev, lengthBytes: prev.lengthBytes + last.lengthBytes, durationS: prev.durationS + last.durationS };
  return {
    ...p,
    targetDurationS: Math.max(p.targetDurationS, Math.round(merged.durationS)),
    segments: [...p.segments.slice(0, -2), merged],
  };
}

// ---- master playlist --------------------------------------------------------------------------

export interface MasterAudioRendition {
  groupId: string;
  /** Shown by players: '原唱 Vocal' / '伴唱 Backing'. */
  name: string;
  /** BCP 47 tag; omitted when unknown. */
  language?: string;
  isDefault: boolean;
  autoselect: boolean;
  channels: number;
  uri: string;
}

export interface MasterVariant {
  /** Peak segment bit rate of the variant including its largest audio rendition (RFC 8216). */
  bandwidthBitsPerS: number;
  averageBandwidthBitsPerS: number;
  codecs: string;
  width: number;
  height: number;
  frameRate?: number;
  audioGroupId: string;
  uri: string;
}

export interface MasterPlaylistSpec {
  audio: MasterAudioRendition[];
  variants: MasterVariant[];
}

/** A quoted-string attribute value: RFC 8216 forbids '"', CR and LF inside. */
function quoted(value: string, what: string): string {
  if (/["\r\n]/.test(value) || value.length === 0) throw new MediaError('bad-playlist', `${what} cannot be written in a playlist: ${JSON.stringify(value)}`);
  return `"${value}"`;
}

function positiveInt(value: number, what: string): string {
  if (!Number.isInteger(value) || value <= 0) throw new MediaError('bad-playlist', `${what} must be a positive integer, got ${value}`);
  return String(value);
}

export function writeMasterPlaylist(spec: MasterPlaylistSpec): string {
  if (spec.variants.length === 0) throw new MediaError('bad-playlist', 'a master playlist needs a variant');
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-INDEPENDENT-SEGMENTS', ''];
  for (const a of spec.audio) {
    const attrs = [
      'TYPE=AUDIO',
      `GROUP-ID=${quoted(a.groupId, 'GROUP-ID')}`,
      `NAME=${quoted(a.name, 'NAME')}`,
      ...(a.language ? [`LANGUAGE=${quoted(a.language, 'LANGUAGE')}`] : []),
      `DEFAULT=${a.isDefault ? 'YES' : 'NO'}`,
      `AUTOSELECT=${a.autoselect ? 'YES' : 'NO'}`,
      `CHANNELS=${quoted(positiveInt(a.channels, 'CHANNELS'), 'CHANNELS')}`,
      `URI=${quoted(checkUri(a.uri, 0), 'URI')}`,
    ];
    lines.push(`#EXT-X-MEDIA:${attrs.join(',')}`);
  }
  if (spec.audio.length) lines.push('');
  for (const v of spec.variants) {
    if (!spec.audio.some((a) => a.groupId === v.audioGroupId)) throw new MediaError('bad-playlist', `variant names audio group ${v.audioGroupId} that has no rendition`);
    const attrs = [
      `BANDWIDTH=${positiveInt(v.bandwidthBitsPerS, 'BANDWIDTH')}`,
      `AVERAGE-BANDWIDTH=${positiveInt(v.averageBandwidthBitsPerS, 'AVERAGE-BANDWIDTH')}`,
      `CODECS=${quoted(v.codecs, 'CODECS')}`,
      `RESOLUTION=${positiveInt(v.width, 'width')}x${positiveInt(v.height, 'height')}`,
      ...(v.frameRate && v.frameRate > 0 ? [`FRAME-RATE=${v.frameRate.toFixed(3)}`] : []),
      `AUDIO=${quoted(v.audioGroupId, 'AUDIO')}`,
    ];
    lines.push(`#EXT-X-STREAM-INF:${attrs.join(',')}`, checkUri(v.uri, 0));
  }
  return lines.join('\n') + '\n';
}
