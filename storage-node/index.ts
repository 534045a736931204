// A storage node: blobs on several disks, verified writes and range reads, replica copies for
// the tracker's repair, and reports to every tracker. This file wires the parts together:
//   store/   bytes on disk (no HTTP)      report/  heartbeats, inventory, changes to trackers
//   copy/    replica copies from peers   server.ts  the HTTP layer
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { ID_RE } from '../common/contracts.js';
import { closeServer, createSignatureContext, listen } from '../common/http.js';
import { randomId } from '../common/ids.js';
import type { Logger } from '../common/log.js';
import { ZkPresence } from '../common/zk.js';
import type { Config } from '../config/schema.js';
import { ReplicaCopier } from './copy/replica-copy.js';
import { EpochFence } from './epoch.js';
import { createNodeMetrics } from './metrics.js';
import { TrackerReporter } from './report/tracker-reporter.js';
import { createApp } from './server.js';
import { BlobStore } from './store/blob-store.js';

export interface StorageNodeOptions {
  config: Config;
  host: string;
  port: number;
  /** Base URLs like http://127.0.0.1:7000/ — the node reports to every one of them. */
  trackers: string[];
  /** One directory per disk; created when missing. */
  disks: string[];
  nodeId?: string;
  /** The cluster secret (trust zone 1). */
  secret: string;
  log: Logger;
  /** The URL others reach this node at; by default from host and the bound port. */
  publicUrl?: string;
}

export interface StorageNodeHandle {
  url: string;
  nodeId: string;
  close(): Promise<void>;
}

/** Keep-alive longer than common proxies' (60 s) so they, not we, close idle connections. */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;

export async function startStorageNode(opts: StorageNodeOptions): Promise<StorageNodeHandle> {
  const { config, log } = opts;
  const nodeConfig = config.storageNode;
  if (opts.nodeId !== undefined && !ID_RE.test(opts.nodeId)) throw new Error(`node id ${JSON.stringify(opts.nodeId)} must be 1-64 characters of A-Z a-z 0-9 _ . -`);
  const signatures = createSignatureContext(opts.secret, config.security.signatureWindowMs, config.security.nonceCacheEntries);
  const metrics = createNodeMetrics();
  const store = await BlobStore.open({ config: nodeConfig, diskRoots: opts.disks, nodeId: opts.nodeId, log, hooks: metrics.hooks });
  metrics.setDiskSource(() => store.diskStatuses());

  let url = '';
  const fence = new EpochFence();
  const copier = new ReplicaCopier({
    store,
    secret: opts.secret,
    maxConcurrentCopies: nodeConfig.maxConcurrentCopies,
    copyTimeoutMsPerGiB: nodeConfig.copyTimeoutMsPerGiB,
    log,
    selfUrl: () => url,
    onResult: (result) => metrics.copy(result),
  });
  const bootId = randomId('b');
  const reporters: TrackerReporter[] = [];
  const app = createApp({
    store,
    fence,
    copier,
    signatures,
    metrics,
    log,
    health: () => ({
      nodeId: store.nodeId,
      url,
      bootId,
      epoch: fence.highestSeen,
      blobs: store.inventory.size,
      disks: store.diskStatuses(),
      trackers: reporters.map((r) => r.status()),
    }),
  });

  let server: Server;
  try {
    server = await listen(app, opts.host, opts.port);
  } catch (error) {
    store.close();
    throw error;
  }
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1000;
  // Node's default 5-minute limit per request would cut a long blob upload; bodies have an idle
  // deadline (writeIdleTimeoutMs) instead.
  server.requestTimeout = 0;
  url = opts.publicUrl ? new URL(opts.publicUrl).href : advertisedUrl(opts.host, (server.address() as AddressInfo).port);

  store.startHousekeeping();
  // HA (ha.zk / --zk): an ephemeral znode, so trackers see a clean stop at once and a crash
  // within the session timeout; heartbeats stay the source of truth for everything else.
  const presence = config.ha.zk
    ? new ZkPresence({ connect: config.ha.zk, sessionTimeoutMs: config.ha.sessionTimeoutMs, path: `${config.ha.root}/nodes/${store.nodeId}`, data: JSON.stringify({ id: store.nodeId, url }), log: log.child({ part: 'zk' }) })
    : undefined;
  presence?.start();
  for (const trackerUrl of opts.trackers) {
    const reporter = new TrackerReporter({
      trackerUrl,
      source: {
        nodeId: store.nodeId,
        bootId,
        url: () => url,
        changes: store.changes,
        diskStatuses: () => store.diskStatuses(),
        inventory: () => store.inventory.entries(),
      },
      secret: opts.secret,
      heartbeatIntervalMs: nodeConfig.heartbeatIntervalMs,
      inventoryBatchBlobs: nodeConfig.inventoryBatchBlobs,
      changeBufferEntries: nodeConfig.changeBufferEntries,
      changePushDelayMs: nodeConfig.changePushDelayMs,
      rpcTimeoutMs: config.rpcTimeoutMs,
      log,
      onEpoch: (epoch) => fence.observe(epoch),
      onSuspectDisks: (reports) => store.suspectReported(reports),
    });
    reporters.push(reporter);
    reporter.start();
  }
  log.info('storage node started', { url, nodeId: store.nodeId, disks: store.diskStatuses().map((d) => `${d.id}:${d.state}`), blobs: store.inventory.size });

  let closing: Promise<void> | undefined;
  return {
    url,
    nodeId: store.nodeId,
    close: () => {
      closing ??= (async () => {
        presence?.close();
        await Promise.all([closeServer(server), ...reporters.map((r) => r.stop())]);
        store.close();
      })();
      return closing;
    },
  };
}

/** A URL other hosts can use: a wildcard bind address is replaced by this host's name. */
export function advertisedUrl(host: string, port: number): string {
  let h = host === '0.0.0.0' || host === '::' || host === '' ? hostname() : host;
  if (h.includes(':') && !h.startsWith('[')) h = `[${h}]`;
  return `http://${h}:${port}/`;
}
