// One song into the cluster: hash the source (its hash names the song, so re-ingesting the same
// file is idempotent), probe, plan, measure loudness, package HLS, store every rendition and
// playlist blob on `replicas` nodes, and only then the manifest. Any failure before the manifest
// leaves data blobs no manifest references: the tracker's garbage collection removes them after
// its grace. The work dir is removed in every case.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import { basename, join } from 'node:path';
import type { Config } from '../../config/schema.js';
import type { SongManifest } from '../../common/contracts.js';
import { songManifestSchema } from '../../common/contracts.js';
import { RpcError } from '../../common/http.js';
import type { Logger } from '../../common/log.js';
import { toPinyin } from '../../common/pinyin.js';
import type { TrackerClient } from '../../common/tracker-client.js';
import { isMediaError, type MediaError } from '../media/errors.js';
import { loudnessForManifest, measureSongLoudness } from '../media/loudness.js';
import { packageHls, type RenditionResult } from '../media/package.js';
import { planIngest, type IngestOptions } from '../media/plan.js';
import { probeMedia } from '../media/probe.js';
import { hashFile, storeBlob, UploadError, type UploadDeps } from './upload.js';

export interface SongMetadata {
  title: string;
  artist: string;
  language: string;
  genre?: string;
}

export interface IngestRequest extends SongMetadata, IngestOptions {
  file: string;
  /** Original file name (uploads are stored under a temp name). */
  sourceName?: string;
}

export type IngestStage = 'hashing' | 'probing' | 'loudness' | 'packaging' | 'storing' | 'indexing' | 'done';

export interface IngestProgress {
  stage: IngestStage;
  /** 0..1 within the stage when known. */
  fraction?: number;
}

export interface IngestContext {
  tracker: TrackerClient;
  secret: string;
  config: Config;
  log: Logger;
  /** Parent of this song's temporary packaging dir. */
  workDir: string;
  onProgress?: (p: IngestProgress) => void;
  signal?: AbortSignal;
  /** ffmpeg threads for this song (CPU budget when several run at once). */
  threads?: number;
  agent?: http.Agent;
}

export interface IngestResult {
  id: string;
  /** The same source was already in the library: nothing was stored. */
  existing: boolean;
  version: number;
  title: string;
  durationS: number;
  videoMode: 'remux' | 'transcode';
  blobs: number;
  storedBytes: number;
  loudnessGainDb: number;
  notes: string[];
}

/** A refusal with the HTTP status it maps to (CONTRACT.md: 400/413/415/422, 503 for the cluster). */
export class IngestError extends Error {
  constructor(readonly status: number, message: string, readonly code: string) {
    super(message);
  }
}

const STATUS_BY_MEDIA_CODE: Record<string, number> = {
  'not-media': 415,
  'unsupported-video-codec': 415,
  'unsupported-audio-codec': 415,
  'too-big': 413,
  'bad-option': 400,
  timeout: 422,
  aborted: 499,
  io: 500,
};

export function ingestErrorFromMedia(error: MediaError): IngestError {
  return new IngestError(STATUS_BY_MEDIA_CODE[error.code] ?? 422, error.message, error.code);
}

/** The song id is derived from the source's SHA-256: the same file always maps to the same song. */
export function songIdForSource(sourceHash: string): string {
  return `s${sourceHash.slice(0, 20)}`;
}

/** 字数: KTV boxes browse by the number of characters (CJK) or words (Latin) in a title. */
export function wordCount(title: string): number {
  const cjk = title.match(/[\u3400-\u9fff\uf900-\ufaff]/g)?.length ?? 0;
  const latin = title.replace(/[\u3400-\u9fff\uf900-\ufaff]/g, ' ').split(/[^\p{L}\p{N}']+/u).filter(Boolean).length;
  return cjk + latin;
}

const METADATA_LIMITS = { title: 300, artist: 300, language: 50, genre: 100 } as const;

export function validateMetadata(m: SongMetadata): SongMetadata {
  const clean = (value: string | undefined, key: keyof typeof METADATA_LIMITS, required: boolean): string => {
    // Control characters would end up in playlists and logs.
    const v = (value ?? '').replace(/[\u0000-\u001f\u007f]/g, ' ').trim();
    if (required && v.length === 0) throw new IngestError(400, `${key} is required`, 'bad-metadata');
    if (v.length > METADATA_LIMITS[key]) throw new IngestError(400, `${key} is longer than ${METADATA_LIMITS[key]} characters`, 'bad-metadata');
    return v;
  };
  return {
    title: clean(m.title, 'title', true),
    artist: clean(m.artist, 'artist', true),
    language: clean(m.language, 'language', true),
    genre: clean(m.genre, 'genre', false),
  };
}

/** The current manifest of a song id, or undefined when the catalog does not have it. */
async function existingSong(tracker: TrackerClient, id: string): Promise<SongManifest | undefined> {
  try {
    const raw = await tracker.call<unknown>(`/api/v1/songs/${id}`, { signed: false });
    const parsed = songManifestSchema.safeParse(raw);
    return parsed.success && !parsed.data.deleted ? parsed.data : undefined;
  } catch (error) {
    if (error instanceof RpcError && error.status === 404) return undefined;
    throw error;
  }
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new IngestError(499, 'ingest cancelled', 'aborted');
}

export async function ingestSong(req: IngestRequest, ctx: IngestContext): Promise<IngestResult> {
  const meta = validateMetadata(req);
  const limits = ctx.config.library.media;
  const progress = (stage: IngestStage, fraction?: number): void => ctx.onProgress?.({ stage, fraction });
  const log = ctx.log.child({ file: req.sourceName ?? basename(req.file) });

  try {
    // Size first: a file over the limit is refused before we read it whole to hash it.
    const info = await stat(req.file).catch(() => undefined);
    if (!info || !info.isFile()) throw new IngestError(400, `${req.sourceName ?? req.file}: not a readable file`, 'bad-file');
    if (info.size > limits.maxSourceBytes) {
      throw new IngestError(413, `file is ${info.size} bytes; the limit is ${limits.maxSourceBytes}`, 'too-big');
    }
    progress('hashing');
    const source = await hashFile(req.file);
    const id = songIdForSource(source.id);
    progress('probing');
    const runCtx = { signal: ctx.signal, log, threads: ctx.threads };
    const probe = await probeMedia(req.file, limits, runCtx);
    const planned = planIngest(probe, { vocalTrack: req.vocalTrack, backingTrack: req.backingTrack, vocalChannel: req.vocalChannel }, limits);
    if (isMediaError(planned)) throw planned;
    // Known sources are skipped after the probe, so a bad file is reported as bad even when the
    // cluster is down; probing costs seconds, packaging minutes.
    const known = await existingSong(ctx.tracker, id);
    if (known) {
      progress('done', 1);
      log.info('source already in the library', { id });
      return {
        id, existing: true, version: known.version, title: known.title, durationS: known.durationS,
        videoMode: known.video?.mode ?? 'remux', blobs: 0, storedBytes: 0, loudnessGainDb: known.loudness?.gainDb ?? 0, notes: ['already in the library'],
      };
    }
    checkAborted(ctx.signal);

    progress('loudness', 0);
    const loudness = await measureSongLoudness(req.file, planned, limits, {
      ...runCtx,
      onProgressS: (s) => progress('loudness', Math.min(1, s / planned.durationS)),
    });
    checkAborted(ctx.signal);

    const outDir = await mkdtemp(join(ctx.workDir, `${id}-`));
    try {
      progress('packaging', 0);
      const packaged = await packageHls(req.file, planned, loudness, outDir, limits, {
        ...runCtx,
        onProgressS: (s) => progress('packaging', Math.min(1, s / planned.durationS)),
      });
      checkAborted(ctx.signal);

      progress('storing', 0);
      const agent = ctx.agent ?? new http.Agent({ keepAlive: true, maxSockets: 8 });
      const deps: UploadDeps = {
        tracker: ctx.tracker,
        secret: ctx.secret,
        replicas: ctx.config.tracker.replicas,
        idleTimeoutMs: ctx.config.library.putIdleTimeoutMs,
        maxPlacementRounds: ctx.config.library.maxPlacementRounds,
        agent,
      };
      const order: RenditionResult[] = [packaged.renditions.video, packaged.renditions.vocal, packaged.renditions.backing];
      const totalBytes = order.reduce((a, r) => a + r.sizeBytes + r.playlistSizeBytes, 0);
      let storedBytes = 0;
      const renditions: SongManifest['renditions'] = [];
      for (const r of order) {
        checkAborted(ctx.signal);
        const media = await storeBlob(r.file, 'data', deps);
        storedBytes += media.sizeBytes;
        progress('storing', storedBytes / totalBytes);
        const playlist = await storeBlob(r.playlistFile, 'data', deps);
        storedBytes += playlist.sizeBytes;
        progress('storing', storedBytes / totalBytes);
        renditions.push({
          role: r.role,
          name: basename(r.file),
          playlistName: basename(r.playlistFile),
          blob: media.id,
          sizeBytes: media.sizeBytes,
          playlistBlob: playlist.id,
          codecs: r.codecs,
          bandwidth: r.bandwidthBitsPerS,
          width: r.width,
          height: r.height,
        });
      }

      const plan = packaged.plan;
      const keys = toPinyin(meta.title);
      const manifest: SongManifest = songManifestSchema.parse({
        type: 'ktv.song',
        id,
        version: 1,
        deleted: false,
        title: meta.title,
        artist: meta.artist,
        language: meta.language,
        genre: meta.genre ?? '',
        pinyin: keys.pinyin,
        initials: keys.initials,
        wordCount: wordCount(meta.title),
        durationS: Number(plan.durationS.toFixed(3)),
        loudness: loudnessForManifest(packaged.loudness),
        renditions,
        masterPlaylist: await readFile(packaged.masterFile, 'utf8'),
        audio: {
          layout: plan.audioLayout,
          mapping: plan.audioMapping,
          vocal: { audioOrdinal: plan.vocal.audioOrdinal, channel: plan.vocal.channel, title: plan.vocal.title },
          backing: { audioOrdinal: plan.backing.audioOrdinal, channel: plan.backing.channel, title: plan.backing.title },
        },
        segmentDurationS: plan.segmentDurationS,
        video: { mode: plan.video.mode, reasons: plan.video.reasons, sourceCodec: plan.video.sourceCodec },
        sourceHash: source.id,
        sourceName: req.sourceName ?? basename(req.file),
        sourceSizeBytes: source.sizeBytes,
        createdAt: new Date().toISOString(),
      });
      // The manifest goes last: until it is stored, the song does not exist.
      checkAborted(ctx.signal);
      await storeBlob(Buffer.from(JSON.stringify(manifest)), 'manifest', deps);

      progress('indexing');
      await waitForCatalog(ctx, id);
      progress('done', 1);
      const result: IngestResult = {
        id,
        existing: false,
        version: manifest.version,
        title: manifest.title,
        durationS: manifest.durationS,
        videoMode: plan.video.mode,
        blobs: renditions.length * 2 + 1,
        storedBytes,
        loudnessGainDb: packaged.loudness.gainDb,
        notes: [...new Set([...plan.notes, ...packaged.notes])],
      };
      log.info('song ingested', { id, title: manifest.title, videoMode: result.videoMode, storedBytes, gainDb: result.loudnessGainDb });
      return result;
    } finally {
      await rm(outDir, { recursive: true, force: true });
    }
  } catch (error) {
    throw toIngestError(error);
  }
}

/** The catalog indexes the manifest from the nodes' reports; wait (bounded) so a search finds it. */
async function waitForCatalog(ctx: IngestContext, id: string): Promise<void> {
  const deadline = Date.now() + ctx.config.library.catalogWaitMs;
  while (Date.now() < deadline) {
    if (await existingSong(ctx.tracker, id).catch(() => undefined)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  ctx.log.warn('song stored but not yet in the catalog', { id, waitedMs: ctx.config.library.catalogWaitMs });
}

export function toIngestError(error: unknown): IngestError {
  if (error instanceof IngestError) return error;
  if (isMediaError(error)) return ingestErrorFromMedia(error);
  if (error instanceof RpcError) return new IngestError(503, `cluster unavailable: ${error.message}`, 'cluster');
  if (error instanceof UploadError) return new IngestError(503, error.message, 'cluster');
  const e = error as Error;
  return new IngestError(500, `ingest failed: ${e?.message ?? String(error)}`, 'internal');
}
