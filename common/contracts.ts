// Cross-role message shapes. Every message that crosses a process boundary is declared here
// once, as a zod schema, and parsed on arrival. Roles import these; nothing is declared twice.
import { z } from 'zod';

/** A blob id is the lowercase hex SHA-256 of its bytes. Nothing else may reach the file system. */
export const BLOB_ID_RE = /^[0-9a-f]{64}$/;
export const blobId = z.string().regex(BLOB_ID_RE, 'must be 64 lowercase hex characters (SHA-256)');
export function isBlobId(value: unknown): value is string {
  return typeof value === 'string' && BLOB_ID_RE.test(value);
}

/** Node and disk ids: short, safe in URLs, file names and metrics labels. */
export const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const safeId = z.string().regex(ID_RE, 'must be 1-64 characters of A-Z a-z 0-9 _ . -');

export const DISK_STATES = ['healthy', 'suspect', 'masked', 'readonly', 'draining'] as const;
export type DiskState = (typeof DISK_STATES)[number];
export const NODE_STATES = ['alive', 'dead'] as const;
export type NodeState = (typeof NODE_STATES)[number];

/** What a blob is. Manifests are indexed into the catalog by the tracker. */
export const BLOB_KINDS = ['data', 'manifest'] as const;
export type BlobKind = (typeof BLOB_KINDS)[number];
export const blobKind = z.enum(BLOB_KINDS);

const httpUrl = z
  .string()
  .max(2048)
  .refine((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.pathname === '/' && !u.search;
    } catch {
      return false;
    }
  }, 'must be an http(s) base URL like http://127.0.0.1:7101/');

/** What an operator asked of a disk (`ktv disk drain|mask|unmask`); kept on the node across restarts. */
export const DISK_OPERATOR_ACTIONS = ['drain', 'mask', 'unmask'] as const;
export type DiskOperatorAction = (typeof DISK_OPERATOR_ACTIONS)[number];
export const DISK_OPERATOR_SETTINGS = ['none', 'drain', 'mask'] as const;
export type DiskOperatorSetting = (typeof DISK_OPERATOR_SETTINGS)[number];

/** The health probe's view of a disk (write + fsync + read-back of a small file, with a deadline). */
export const diskProbeStatus = z.strictObject({
  /** ISO time of the last probe ('' before the first). */
  lastAt: z.string().max(64),
  /** Duration of the last probe, ms (-1 when it failed or timed out). */
  lastMs: z.number(),
  /** The disk's normal probe duration (median of recent good probes), ms. */
  normalMs: z.number().nonnegative(),
  /** Good probes in a row (a masked disk needs several before it is trusted again). */
  okStreak: z.number().int().nonnegative(),
  /** Failed or slow probes and I/O errors inside the current window. */
  recentFaults: z.number().int().nonnegative(),
});
export type DiskProbeStatus = z.infer<typeof diskProbeStatus>;

/** The scrubber's progress on a disk (every blob re-hashed once per scrub period, throttled). */
export const diskScrubStatus = z.strictObject({
  /** ISO time the last complete pass ended ('' before the first). */
  lastPassAt: z.string().max(64),
  /** Blobs verified in the current pass so far. */
  passVerified: z.number().int().nonnegative(),
  /** Replicas found corrupt (and quarantined) since the node started. */
  corruptFound: z.number().int().nonnegative(),
  /** Bytes re-hashed since the node started. */
  bytesVerified: z.number().int().nonnegative(),
  /** Current throttle, bytes/s. */
  rateBytesPerSec: z.number().nonnegative(),
});
export type DiskScrubStatus = z.infer<typeof diskScrubStatus>;

export const diskStatus = z.strictObject({
  id: safeId,
  state: z.enum(DISK_STATES),
  /** Why the disk is in this state (empty when healthy). */
  reason: z.string().max(500).default(''),
  freeBytes: z.number().int().nonnegative(),
  totalBytes: z.number().int().nonnegative(),
  blobs: z.number().int().nonnegative(),
  usedBytes: z.number().int().nonnegative(),
  /** The operator's setting ('none' unless `ktv disk drain|mask` said otherwise). Optional: older nodes. */
  operator: z.enum(DISK_OPERATOR_SETTINGS).optional(),
  probe: diskProbeStatus.optional(),
  scrub: diskScrubStatus.optional(),
  /** A masked disk that came back and is being verified before it is trusted: blobs checked / total. */
  verifying: z.strictObject({ checked: z.number().int().nonnegative(), total: z.number().int().nonnegative() }).optional(),
});
export type DiskStatus = z.infer<typeof diskStatus>;

/** Storage node → tracker, every heartbeat interval. */
export const heartbeatRequest = z.strictObject({
  nodeId: safeId,
  url: httpUrl,
  /** Changes the node has made since it started; the tracker asks for a full report on a gap. */
  changeSeq: z.number().int().nonnegative(),
  /** Process start id: a new one means the node restarted and its inventory must be re-read. */
  bootId: safeId,
  disks: z.array(diskStatus).max(256),
});
export type HeartbeatRequest = z.infer<typeof heartbeatRequest>;

export const heartbeatResponse = z.object({
  /** The tracker has no complete inventory of this node (it or the node restarted): send one. */
  needFullReport: z.boolean(),
  epoch: z.number().int().nonnegative(),
  leader: z.boolean(),
  /**
   * Disks of this node that streamers failed to read from (readFailuresToSuspect within the
   * window): the node probes them now and counts the failures as faults. Optional: older trackers.
   */
  suspectDisks: z.array(z.strictObject({ disk: safeId, failures: z.number().int().nonnegative(), reason: z.string().max(300) })).max(256).optional(),
});
export type HeartbeatResponse = z.infer<typeof heartbeatResponse>;

/** [blobId, sizeBytes, kind] — compact, since a full report can list millions. */
export const inventoryEntry = z.tuple([blobId, z.number().int().nonnegative(), blobKind]);
export type InventoryEntry = z.infer<typeof inventoryEntry>;

/** Storage node → tracker: one batch of a full inventory. */
export const inventoryBatch = z.strictObject({
  nodeId: safeId,
  bootId: safeId,
  /** All batches of one report share it; a new report id discards an unfinished one. */
  reportId: safeId,
  /** The change sequence the inventory is consistent with. */
  changeSeq: z.number().int().nonnegative(),
  part: z.number().int().nonnegative(),
  /** The last batch: the tracker then replaces everything it knew of this node. */
  final: z.boolean(),
  disks: z
    .array(z.strictObject({ id: safeId, blobs: z.array(inventoryEntry).max(200_000) }))
    .max(256),
});
export type InventoryBatch = z.infer<typeof inventoryBatch>;

/** Storage node → tracker: blobs added or removed since the last change. */
export const changeReport = z.strictObject({
  nodeId: safeId,
  bootId: safeId,
  /** Sequence of the first change in this message; changes are numbered from 1 per boot. */
  fromSeq: z.number().int().positive(),
  changes: z
    .array(
      z.strictObject({
        op: z.enum(['add', 'remove']),
        disk: safeId,
        blob: blobId,
        size: z.number().int().nonnegative(),
        kind: blobKind,
      }),
    )
    .min(1)
    .max(10_000),
});
export type ChangeReport = z.infer<typeof changeReport>;

/** Tracker → storage node: pull a blob from one of these sources and store it. */
export const fetchCommand = z.strictObject({
  sources: z.array(httpUrl).min(1).max(16),
  size: z.number().int().nonnegative(),
  kind: blobKind,
  /** Disk to write to; the node picks one when absent. */
  disk: safeId.optional(),
  epoch: z.number().int().nonnegative(),
});
export type FetchCommand = z.infer<typeof fetchCommand>;

export const deleteCommand = z.strictObject({
  epoch: z.number().int().nonnegative(),
  /** Only this disk's copy (all the node's copies when absent). */
  disk: safeId.optional(),
});
export type DeleteCommand = z.infer<typeof deleteCommand>;

/** Operator → tracker (admin token) → storage node (signed): POST /internal/v1/disks/{disk}/operator. */
export const diskOperatorCommand = z.strictObject({
  action: z.enum(DISK_OPERATOR_ACTIONS),
  /** Free text kept with the setting and shown in `ktv status` ("replacing, ticket 42"). */
  note: z.string().max(200).default(''),
});
export type DiskOperatorCommand = z.infer<typeof diskOperatorCommand>;

/** Anyone with the cluster secret → tracker: where to write a new blob. */
export const placementRequest = z.strictObject({
  size: z.number().int().nonnegative(),
  /** Nodes to leave out (e.g. one that just failed this upload). */
  excludeNodes: z.array(safeId).max(64).default([]),
});
export const placementTarget = z.object({ nodeId: safeId, url: httpUrl, diskId: safeId });
export type PlacementTarget = z.infer<typeof placementTarget>;
export const placementResponse = z.object({
  epoch: z.number().int().nonnegative(),
  targets: z.array(placementTarget),
});
export type PlacementResponse = z.infer<typeof placementResponse>;

export const replicaInfo = z.object({
  nodeId: safeId,
  url: httpUrl,
  diskId: safeId,
  nodeState: z.enum(NODE_STATES),
  diskState: z.enum(DISK_STATES),
});
export type ReplicaInfo = z.infer<typeof replicaInfo>;
export const locateResponse = z.object({
  id: blobId,
  size: z.number().int().nonnegative(),
  kind: blobKind,
  /** Readable replicas first, best first. */
  replicas: z.array(replicaInfo),
});
export type LocateResponse = z.infer<typeof locateResponse>;

// ---- Streamers (DESIGN.md "Streaming path") -----------------------------------------------

export const STREAMER_STATES = ['alive', 'dead'] as const;
export type StreamerState = (typeof STREAMER_STATES)[number];

/** Streamer → every tracker, every heartbeat interval (signed). */
export const streamerHeartbeat = z.strictObject({
  id: safeId,
  /** Where rooms reach it. */
  url: httpUrl,
  /** ISO time the streamer process started (a new one means it restarted). */
  startedAt: z.string().max(64),
  /** Media and playlist bytes sent to clients since it started. */
  servedBytes: z.number().int().nonnegative(),
  /**
   * Songs started since the previous heartbeat that was answered (master playlist requests),
   * [songId, count]; the tracker adds them to its play counts (repair order, 热门). Optional.
   */
  plays: z.array(z.tuple([z.string().regex(/^[A-Za-z0-9_-]{1,64}$/), z.number().int().positive()])).max(10_000).optional(),
});
export type StreamerHeartbeat = z.infer<typeof streamerHeartbeat>;

/** One row of GET /api/v1/streamers (rooms fail over between the alive ones). */
export interface StreamerInfo {
  id: string;
  url: string;
  state: StreamerState;
  lastHeartbeatAgoMs: number;
  startedAt: string;
  servedBytes: number;
}

/** Why a streamer's read from a replica failed. */
export const READ_FAILURE_REASONS = ['timeout', 'connect', 'not-found', 'status', 'short-body', 'bad-answer'] as const;
export type ReadFailureReason = (typeof READ_FAILURE_REASONS)[number];

/** Streamer → tracker (signed): a replica read failed; a disk-health signal (DESIGN.md "Health"). */
export const readFailureReport = z.strictObject({
  blobId,
  nodeId: safeId,
  diskId: safeId,
  reason: z.enum(READ_FAILURE_REASONS),
  /** Free text for the log (HTTP status, error message). */
  detail: z.string().max(300).default(''),
  streamerId: safeId.optional(),
});
export type ReadFailureReport = z.infer<typeof readFailureReport>;

/** CONTRACT.md: GET /api/v1/cluster. */
export interface ClusterView {
  leader: boolean;
  epoch: number;
  nodes: Array<{
    id: string;
    url: string;
    state: NodeState;
    lastHeartbeatAgoMs: number;
    disks: Array<{
      id: string;
      state: DiskState;
      reason: string;
      freeBytes: number;
      totalBytes: number;
      blobs: number;
      /** Optional: sent by trackers from issue 5 on. */
      operator?: DiskOperatorSetting;
      probe?: DiskProbeStatus;
      scrub?: DiskScrubStatus;
      verifying?: { checked: number; total: number };
      /** Streamer read failures counted against this disk in the current window. */
      readFailures?: number;
      /** Draining: blobs on this disk that do not yet have their full count of copies elsewhere. */
      drain?: DrainProgress;
    }>;
    /** All of the node's disks draining (`ktv node drain`). */
    drain?: DrainProgress;
  }>;
  blobs: { total: number; underReplicated: number; lost: number; bytes: number };
  repair: {
    queued: number;
    inFlight: number;
    done: number;
    failed: number;
    /** Bytes of the blobs waiting for a copy. Optional fields: trackers from issue 5 on. */
    queuedBytes?: number;
    /** Copy throughput over the last minute, bytes/s. */
    rateBytesPerSec?: number;
    /** queuedBytes / the current budget or rate, seconds (null: nothing to do, or no rate yet). */
    etaS?: number | null;
    /** The bandwidth budget in force: the window and the cluster and per-node limits, bytes/s. */
    budget?: { window: 'business' | 'maintenance'; clusterBytesPerSec: number; nodeBytesPerSec: number };
    /** Bytes copied since the tracker started. */
    copiedBytes?: number;
  };
  /** Blobs with no readable copy anywhere (at most 100 listed; `blobs.lost` is the count). */
  lostBlobs?: Array<{ id: string; sizeBytes: number; kind: BlobKind; songs: string[]; lostSinceAgoMs: number }>;
  songs: number;
  /**
   * Orphan-blob collection (tracker/gc). `orphans`: found by the last pass, past the grace;
   * `unreferenced`: no current manifest names them, grace included; `deleted`/`deletedBytes`:
   * since the tracker started; `lastRunAt`: ISO time of the last unblocked pass; `blocked`: why
   * the last pass decided nothing ('' when it ran). Optional: older trackers do not send it.
   */
  gc?: { orphans: number; unreferenced: number; deleted: number; deletedBytes: number; lastRunAt: string | null; blocked: string };
  /** Streamers that sent a heartbeat (alive or recently dead). Optional: older trackers do not send it. */
  streamers?: StreamerInfo[];
}

/** Progress of a drain: what still needs a copy elsewhere before the disk or node can be removed. */
export interface DrainProgress {
  remainingBlobs: number;
  remainingBytes: number;
  /** Every blob on it has its full count of live copies on other disks/nodes. */
  safeToRemove: boolean;
}

// ---- Song manifest (DESIGN.md "Data") -------------------------------------------------------

export const renditionSchema = z.object({
  /** 'video', 'vocal' (原唱) or 'backing' (伴唱). */
  role: z.enum(['video', 'vocal', 'backing']),
  /** File name the media playlist uses for this rendition (`video.mp4`); the streamer maps it to `blob`. */
  name: z.string().regex(/^[a-z0-9_-]{1,32}\.mp4$/).optional(),
  /** File name of the rendition's media playlist in the master (`video.m3u8`). */
  playlistName: z.string().regex(/^[a-z0-9_-]{1,32}\.m3u8$/).optional(),
  blob: blobId,
  sizeBytes: z.number().int().nonnegative(),
  /** The rendition's HLS media playlist (byte ranges into `blob`), a blob of its own. */
  playlistBlob: blobId.optional(),
  codecs: z.string().max(200).optional(),
  bandwidth: z.number().int().nonnegative().optional(),
  width: z.number().int().positive().optional(),
  height: z.number().int().positive().optional(),
});

export const songManifestSchema = z.object({
  type: z.literal('ktv.song'),
  id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  version: z.number().int().positive(),
  deleted: z.boolean().default(false),
  title: z.string().max(300).default(''),
  artist: z.string().max(300).default(''),
  language: z.string().max(50).default(''),
  genre: z.string().max(100).default(''),
  pinyin: z.string().max(2000).default(''),
  initials: z.string().max(300).default(''),
  wordCount: z.number().int().nonnegative().default(0),
  durationS: z.number().nonnegative().default(0),
  loudness: z.record(z.string(), z.number()).optional(),
  renditions: z.array(renditionSchema).max(16).default([]),
  masterPlaylist: z.string().max(64 * 1024).optional(),
  /** Where each role came from in the source (DESIGN.md: stored, never guessed at play time). */
  audio: z
    .object({
      layout: z.enum(['two-streams', 'channel-split']),
      mapping: z.enum(['explicit', 'titles', 'vocal-channel']),
      vocal: z.object({ audioOrdinal: z.number().int().nonnegative(), channel: z.enum(['both', 'left', 'right']), title: z.string().max(300).optional() }),
      backing: z.object({ audioOrdinal: z.number().int().nonnegative(), channel: z.enum(['both', 'left', 'right']), title: z.string().max(300).optional() }),
    })
    .optional(),
  segmentDurationS: z.number().positive().optional(),
  /** How the video was made: stream copy of the source, or a transcode (and why). */
  video: z.object({ mode: z.enum(['remux', 'transcode']), reasons: z.array(z.string().max(500)).max(20), sourceCodec: z.string().max(50) }).optional(),
  sourceName: z.string().max(500).optional(),
  sourceSizeBytes: z.number().int().nonnegative().optional(),
  sourceHash: z.string().max(128).optional(),
  createdAt: z.string().max(64).optional(),
});
export type SongManifest = z.infer<typeof songManifestSchema>;

/** CONTRACT.md: one row of GET /api/v1/songs. */
export interface SongSummary {
  id: string;
  title: string;
  artist: string;
  language: string;
  initials: string;
  durationS: number;
  genre: string;
  version: number;
}

// ---- Header names -------------------------------------------------------------------------

export const HEADER_KIND = 'x-ktv-kind';
export const HEADER_EPOCH = 'x-ktv-epoch';
