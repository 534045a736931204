// Every tunable of every role, with its default. One place for every port, path, timeout and
// limit (STYLE.md). A role loads this once at start-up: defaults, then `--config FILE`, then
// flags. Anything invalid stops the process with one line that names the bad key.
import { totalmem } from 'node:os';
import { z } from 'zod';
import { mediaConfigSchema } from './media.js';

const port = z.number().int().min(0).max(65535);
const positiveMs = z.number().int().positive();
const bytes = z.number().int().nonnegative();

/** A quarter of this machine's memory, within [512 MiB, 16 GiB]. */
export function defaultCacheBytes(totalBytes = totalmem()): number {
  return Math.min(16 * 1024 ** 3, Math.max(512 * 1024 ** 2, Math.floor(totalBytes / 4 / 1024 ** 2) * 1024 ** 2));
}

export const storageNodeSchema = z.strictObject({
  /** Heartbeat period to every tracker. */
  heartbeatIntervalMs: positiveMs.default(1000),
  /** Blobs per inventory batch sent on join; a full report is several batches. */
  inventoryBatchBlobs: z.number().int().min(1).max(200_000).default(20_000),
  /** Largest blob a PUT or a replica copy accepts. 4 GiB covers a long 1080p rendition. */
  maxBlobBytes: bytes.default(4 * 1024 ** 3),
  /** Below this free space a disk takes no new blobs (it becomes `readonly`). */
  diskFreeFloorBytes: bytes.default(256 * 1024 ** 2),
  /** Deadline for one disk operation (open, stat, fsync, rename) before it counts as failed. */
  diskOpTimeoutMs: positiveMs.default(5000),
  /** Idle deadline for an incoming blob body: no byte for this long aborts the write. */
  writeIdleTimeoutMs: positiveMs.default(30_000),
  /** Deadline for a replica copy pulled from another node, per GiB of blob (plus one unit). */
  copyTimeoutMsPerGiB: positiveMs.default(120_000),
  /** Chunk size for per-range verification: reads check the SHA-256 of every chunk they touch. */
  verifyChunkBytes: z.number().int().min(64 * 1024).max(64 * 1024 * 1024).default(1024 * 1024),
  /** Blobs whose chunk check is remembered (file identity: inode, size, mtime). */
  verifiedCacheEntries: z.number().int().positive().default(100_000),
  /** Largest single read buffer used while serving a range. */
  readBufferBytes: z.number().int().min(16 * 1024).max(16 * 1024 * 1024).default(1024 * 1024),
  /** Temp files from interrupted writes older than this are removed at start and periodically. */
  tempFileMaxAgeMs: positiveMs.default(60 * 60 * 1000),
  /** Concurrent replica copies this node runs for the tracker; more are refused with 503. */
  maxConcurrentCopies: z.number().int().positive().default(4),
  /** Period of the per-disk check (free space, directory still there). */
  diskCheckIntervalMs: positiveMs.default(2000),
  /** Unsent changes kept per tracker; past this the node sends a full report instead. */
  changeBufferEntries: z.number().int().positive().default(100_000),
  /** Changes are pushed this long after the first one, so a burst goes out as one message. */
  changePushDelayMs: z.number().int().nonnegative().default(50),
  /** Leaf directories scanned at once per disk at start (each one readdir plus its stats). */
  scanConcurrency: z.number().int().min(1).max(1024).default(32),
  // ---- disk health (issue 5; README "Disk health") ----
  /** Period of the health probe per disk: write + fsync + read back a small file. */
  probeIntervalMs: positiveMs.default(5000),
  /** A probe slower than this fails (counts as a fault). */
  probeTimeoutMs: positiveMs.default(2000),
  /** Bytes the probe writes and reads back. */
  probeBytes: z.number().int().min(512).max(16 * 1024 * 1024).default(64 * 1024),
  /** A probe or disk operation slower than slowFactor × the disk's normal (and than slowFloorMs) is a fault. */
  slowFactor: z.number().min(1.5).max(1000).default(10),
  slowFloorMs: positiveMs.default(200),
  /** Faults (failed/slow probes, timeouts, errors on real I/O) are counted over this window. */
  faultWindowMs: positiveMs.default(60_000),
  /** This many faults in the window make the disk `suspect` (still used, watched). */
  faultsToSuspect: z.number().int().positive().default(1),
  /** This many faults in the window mask it. EIO-class errors and a vanished directory mask at once. */
  faultsToMask: z.number().int().positive().default(3),
  /** Good probes in a row before a disk masked by faults (not by the operator) is verified and trusted again. */
  recoveryProbes: z.number().int().positive().default(3),
  /** Every blob is re-hashed once per period (a pass starts this long after the previous one started). */
  scrubPeriodMs: positiveMs.default(7 * 24 * 60 * 60 * 1000),
  /** Scrub read rate per disk (a throttle: streaming comes first). 0 disables scrubbing. */
  scrubBytesPerSec: z.number().int().nonnegative().default(16 * 1024 * 1024),
});

export const trackerSchema = z.strictObject({
  /** Copies of each blob on distinct nodes. */
  replicas: z.number().int().min(1).max(10).default(2),
  /** A node silent for this long is `dead`. */
  nodeDeadAfterMs: positiveMs.default(5000),
  /** A dead node's blobs are re-replicated after this grace (it may only be rebooting). */
  repairGraceMs: z.number().int().nonnegative().default(60_000),
  /**
   * A blob new to the index is not repaired before this age: the other copies of an upload may
   * still be on their way (the writer PUTs to each target). Defaults to repairGraceMs.
   */
  repairNewBlobGraceMs: z.number().int().nonnegative().optional(),
  /** Repair loop period. */
  repairIntervalMs: positiveMs.default(1000),
  /** Replica copies in flight at once across the cluster. */
  repairMaxConcurrent: z.number().int().positive().default(4),
  /** A disk with less free space than this is skipped by placement. */
  placementFreeFloorBytes: bytes.default(512 * 1024 ** 2),
  /** Largest request body on JSON endpoints (inventory batches are the big ones). */
  maxJsonBodyBytes: bytes.default(8 * 1024 * 1024),
  /** Manifest blobs fetched from storage nodes at once while (re)building the catalog. */
  manifestFetchConcurrent: z.number().int().positive().default(8),
  /** Largest manifest blob that is parsed. */
  maxManifestBytes: bytes.default(1024 * 1024),
  /** Most songs one search returns. */
  searchMaxLimit: z.number().int().positive().default(200),
  /** Longest search text accepted (characters); longer is a 400, not a slow query. */
  searchMaxQueryChars: z.number().int().positive().default(100),
  /** First retry delay of a failed repair copy; doubles per failure up to repairRetryMaxMs. */
  repairRetryBaseMs: positiveMs.default(2000),
  /** Longest delay between retries of one blob's repair (bounds the backoff). */
  repairRetryMaxMs: positiveMs.default(60_000),
  /** Repair candidates kept per scan (fewest live copies first); the rest wait for the next scan. */
  repairQueueMax: z.number().int().positive().default(10_000),
  /** A full inventory report with no batch for this long is dropped (the node resends on request). */
  inventoryReportIdleMs: positiveMs.default(60_000),
  /** Most blobs one full inventory report may list (bounds the tracker's per-report memory). */
  inventoryReportMaxBlobs: z.number().int().positive().default(20_000_000),
  /** Change entries buffered per node while its full report is still arriving. */
  changeBufferMaxEntries: z.number().int().positive().default(100_000),
  /** Manifest blobs waiting to be fetched into the catalog; overflow is picked up by a later sweep. */
  manifestQueueMax: z.number().int().positive().default(200_000),
  /** First retry delay of a manifest that could not be fetched; doubles up to manifestRetryMaxMs. */
  manifestRetryBaseMs: positiveMs.default(1000),
  manifestRetryMaxMs: positiveMs.default(60_000),
  /** Delete orphan data blobs (false: passes still run and count them for `ktv status`, deleting nothing). */
  gcEnabled: z.boolean().default(true),
  /**
   * A data blob is collected only after this long in the index AND this long unreferenced. An
   * upload writes its data blobs minutes before its manifest, and a room may still be playing a
   * song that was just deleted or re-versioned. A tracker restart restarts both clocks.
   */
  gcGraceMs: positiveMs.default(6 * 60 * 60 * 1000),
  /** Period of the GC pass (one walk over the index, a chunk per event-loop turn). */
  gcIntervalMs: positiveMs.default(60_000),
  /** Orphans deleted at most per pass (each is a DELETE to every node holding a copy). */
  gcMaxDeletesPerTick: z.number().int().positive().default(100),
  /** A streamer silent for this long is `dead` in GET /api/v1/streamers (3 missed heartbeats). */
  streamerDeadAfterMs: positiveMs.default(6000),
  /** Dead streamers are forgotten after this long. */
  streamerForgetAfterMs: positiveMs.default(60 * 60 * 1000),
  /** Streamers remembered at most (oldest heartbeat forgotten first). */
  streamerRegistryMax: z.number().int().positive().default(1000),
  // ---- repair bandwidth and disk health (issue 5; README "Disk health") ----
  /** Repair copy budget for the whole cluster during business hours, bytes/s (rooms come first). */
  repairClusterBytesPerSec: bytes.default(64 * 1024 ** 2),
  /** Repair copy budget per node (as source or destination) during business hours, bytes/s. */
  repairNodeBytesPerSec: bytes.default(32 * 1024 ** 2),
  /** Budgets inside the maintenance window. */
  repairMaintenanceClusterBytesPerSec: bytes.default(512 * 1024 ** 2),
  repairMaintenanceNodeBytesPerSec: bytes.default(256 * 1024 ** 2),
  /** Maintenance window in the tracker host's local time, 'HH:MM-HH:MM' (may wrap midnight); '' = none. */
  maintenanceWindow: z.string().regex(/^$|^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$/, "must be 'HH:MM-HH:MM' or ''").default('04:00-10:00'),
  /** Streamer read failures on one disk within readFailureWindowMs that make the tracker tell its node to check it. */
  readFailuresToSuspect: z.number().int().positive().default(3),
  readFailureWindowMs: positiveMs.default(60_000),
});

export const securitySchema = z.strictObject({
  /** A signed request older or newer than this is refused (replay window). */
  signatureWindowMs: positiveMs.default(30_000),
  /** Nonces remembered to refuse replays inside the window. */
  nonceCacheEntries: z.number().int().positive().default(200_000),
});

export const librarySchema = z.strictObject({
  /** Largest upload `POST /api/v1/songs` accepts (multer streams it to disk, then stops). */
  maxUploadBytes: z.number().int().positive().default(4 * 1024 ** 3),
  /** Uploads and packaging output live here while a song is ingested, then are removed. */
  workDir: z.string().min(1).default(''),
  /** Songs packaged at once by one library process (each ffmpeg gets cores / jobs threads). */
  jobs: z.number().int().min(1).max(16).default(1),
  /** Uploads waiting for a packaging slot; more are refused with 503 (bounded queue). */
  queueMax: z.number().int().min(0).max(1000).default(8),
  /** Placement rounds before an upload gives up on finding enough healthy nodes. */
  maxPlacementRounds: z.number().int().min(1).max(10).default(3),
  /** No byte moving to a storage node for this long aborts that PUT. */
  putIdleTimeoutMs: z.number().int().positive().default(30_000),
  /** After storing a manifest, wait this long for the tracker's catalog to list the song. */
  catalogWaitMs: z.number().int().nonnegative().default(15_000),
  /** An upload with no byte arriving for this long is cut and its partial file removed. */
  uploadIdleTimeoutMs: z.number().int().positive().default(60_000),
  /** The web page's progress entries (GET /api/v1/jobs/:id) are kept this long after their last change. */
  jobProgressTtlMs: z.number().int().positive().default(10 * 60_000),
  /** Progress entries kept at most; the least recently updated goes first. */
  jobProgressMaxEntries: z.number().int().min(1).max(100_000).default(1000),
  /** Songs `ktv up` generates on its first start (0 = none). */
  demoSongs: z.number().int().min(0).max(20).default(4),
  /** Length of each generated demo song. */
  demoSongDurationS: z.number().int().min(4).max(600).default(30),
  /** Picture size of generated demo songs (720p: quick to make, still a real HD stream). */
  demoWidthPx: z.number().int().min(160).max(1920).default(1280),
  demoHeightPx: z.number().int().min(90).max(1080).default(720),
  media: mediaConfigSchema.default(mediaConfigSchema.parse({})),
});

export const streamerSchema = z.strictObject({
  /**
   * Hot-range cache (LRU by bytes). Default: a quarter of the machine's memory, at least 512 MiB
   * and at most 16 GiB (6 GiB on a 24 GiB box: ~270 segments of 4 s at 45 Mbit/s, the hot songs
   * of a night, not the library). Every hit is a segment that costs no storage-node read, no
   * loopback or LAN hop and no copy into a new buffer; with 512 MiB about half the segment
   * requests of 40 Zipf rooms over a 10-song library missed (`npm run bench`, stream).
   */
  cacheBytes: bytes.default(defaultCacheBytes()),
  /** Ranges longer than this are never cached nor buffered: they stream through (bounded memory). */
  cacheMaxEntryBytes: bytes.default(32 * 1024 ** 2),
  /**
   * Bytes held at once by cold reads being buffered for the cache (each up to cacheMaxEntryBytes).
   * Past it, new cold requests stream straight through instead: 300 rooms on 300 different
   * segments must not mean 300 × 22 MB in memory.
   */
  inflightBufferBytes: bytes.default(256 * 1024 ** 2),
  /**
   * Deadline for one replica read: time to first byte, and the longest wait for any next chunk.
   * Well inside a 4 s segment, so a dead or stuck replica costs a room one retry, not a stall.
   */
  upstreamTimeoutMs: positiveMs.default(1500),
  /**
   * A buffered read (one segment) must also finish within upstreamTimeoutMs + its size at this
   * rate: 22 MB at 16 MiB/s is 1.3 s more, still inside the segment. Slower is a failed replica.
   */
  upstreamMinBytesPerS: z.number().int().positive().default(16 * 1024 ** 2),
  /** Keep-alive sockets to one storage node at most (more requests queue inside the deadline). */
  upstreamMaxSocketsPerNode: z.number().int().min(1).max(4096).default(64),
  /** Replica reads one client request may try (failover and resume) before it is a 502. */
  upstreamMaxAttempts: z.number().int().min(1).max(16).default(4),
  /** Deadline of one tracker call (manifest, locate, search). Cached answers cover the wait. */
  trackerTimeoutMs: positiveMs.default(1000),
  /** A manifest older than this is refreshed in the background; a failed refresh keeps it. */
  manifestTtlMs: positiveMs.default(60_000),
  /** Songs whose manifest is kept (LRU; ~8 KB each with its master playlist: 5,000 ≈ 40 MB). */
  manifestCacheEntries: z.number().int().positive().default(5000),
  /** An unknown song id is remembered this long (a room retrying a bad id does not hit the tracker). */
  missingSongTtlMs: positiveMs.default(5000),
  /** Blob locations older than this are refreshed in the background; kept on tracker failure. */
  locateTtlMs: positiveMs.default(30_000),
  /** Blobs whose locations are kept (LRU; ~7 per song, ~0.8 KB each: 50,000 ≈ 40 MB). */
  locateCacheEntries: z.number().int().positive().default(50_000),
  /** After a failed background refresh, the same key waits this long before the next try. */
  refreshRetryMs: positiveMs.default(5000),
  /** Catalog search answers are reused this long, and served stale while the tracker is down. */
  searchTtlMs: positiveMs.default(5000),
  /** Distinct searches kept (LRU). */
  searchCacheEntries: z.number().int().positive().default(2000),
  /** The streamer list (GET /api/v1/streamers) is reused this long. */
  streamersTtlMs: positiveMs.default(2000),
  /** Registration heartbeat to every tracker (the tracker's streamerDeadAfterMs is 3 of these). */
  heartbeatIntervalMs: positiveMs.default(2000),
  /** Read-failure reports waiting to be sent to the tracker; more are dropped (and counted). */
  readFailureQueueMax: z.number().int().positive().default(256),
  /** Largest media playlist served (100,000 segments at ~40 bytes each fits). */
  maxPlaylistBytes: bytes.default(8 * 1024 ** 2),
  /** Idle keep-alive connections from rooms are kept this long (longer than a segment period). */
  clientKeepAliveMs: positiveMs.default(65_000),
  /** A client connection with no progress for this long (not reading, not sending) is closed. */
  clientIdleTimeoutMs: positiveMs.default(30_000),
  /** Connections served at once; more are refused by the kernel backlog. */
  maxConnections: z.number().int().positive().default(4096),
  /** URL rooms and the tracker use to reach this streamer ('' = the bound address). */
  publicUrl: z.string().max(2048).default(''),
});

export const portsSchema = z.strictObject({
  tracker: port.default(7000),
  storageNodeBase: port.default(7101),
  streamer: port.default(8080),
  library: port.default(7200),
});

/** Tracker high availability over ZooKeeper (docs/architecture.md "High availability"). */
export const haSchema = z.strictObject({
  /** ZooKeeper connect string host:port[,host:port…]; empty = one embedded tracker, no ZooKeeper. */
  zk: z.string().max(2048).default(''),
  /** Root of this cluster's znodes; several clusters can share one ZooKeeper. */
  root: z.string().regex(/^(\/[A-Za-z0-9_.-]+)+$/, 'an absolute znode path like /ktv/default').default('/ktv/default'),
  /** Requested session timeout; ZooKeeper clamps it to [2, 20] × its tickTime. */
  sessionTimeoutMs: z.number().int().min(1000).max(120_000).default(10_000),
  /**
   * The leader mutates only while ZooKeeper answered a request it sent less than this fraction of
   * the session timeout ago; the rest is the margin before anyone else can win.
   */
  leaseFraction: z.number().gt(0).max(0.8).default(0.5),
  /** This tracker's id in the election; default `tracker-<port>`. */
  trackerId: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/).optional(),
  /** `ktv up --ha`: client port of the local ZooKeeper it starts (the second tracker is ports.tracker + 1). */
  localZkPort: port.default(7181),
  /** `ktv up --ha`: Java class path of the ZooKeeper server (Debian's zookeeper package). */
  localZkClasspath: z.string().max(4096).default('/etc/zookeeper/conf:/usr/share/java/*'),
});

export const configSchema = z.strictObject({
  /** Host every role binds to. The local cluster stays on loopback. */
  host: z.string().min(1).default('127.0.0.1'),
  ports: portsSchema.default(portsSchema.parse({})),
  security: securitySchema.default(securitySchema.parse({})),
  storageNode: storageNodeSchema.default(storageNodeSchema.parse({})),
  tracker: trackerSchema.default(trackerSchema.parse({})),
  library: librarySchema.default(librarySchema.parse({})),
  streamer: streamerSchema.default(streamerSchema.parse({})),
  /** Deadline for one control-plane HTTP call between roles. */
  rpcTimeoutMs: positiveMs.default(5000),
  /** Log level: debug < info < warn < error. */
  logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  ha: haSchema.default(haSchema.parse({})),
});

export type Config = z.infer<typeof configSchema>;
export type StorageNodeConfig = z.infer<typeof storageNodeSchema>;
export type TrackerConfig = z.infer<typeof trackerSchema>;
export type LibraryConfig = z.infer<typeof librarySchema>;
export type StreamerConfig = z.infer<typeof streamerSchema>;
export type HaConfig = z.infer<typeof haSchema>;
