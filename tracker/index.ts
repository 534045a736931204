// The tracker role: node + disk registry, blob → replica index, placement, repair, catalog.
// `startTracker` is what `ktv tracker` and `ktv up` call; tests start it in-process on port 0.
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { closeServer, listen } from '../common/http.js';
import type { Logger } from '../common/log.js';
import type { Config } from '../config/schema.js';
import { TrackerCore, type CoreOptions } from './core.js';
import { ZkLeadership } from './ha/election.js';
import { createTrackerApp } from './server.js';

export { TrackerCore } from './core.js';
export type { CoreOptions } from './core.js';
export { choosePlacement } from './topology/placement.js';
export { Catalog } from './catalog/store.js';
export { toPinyin } from '../common/pinyin.js';
export { standaloneLeadership, type Leadership } from './leadership.js';
export { ZkLeadership } from './ha/election.js';

export interface TrackerOptions {
  config: Config;
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  dataDir: string;
  secret: string;
  adminToken: string;
  log: Logger;
  /** Advanced: replace parts of the core (transports, clock, leadership). */
  core?: Partial<Omit<CoreOptions, 'config' | 'dataDir' | 'secret' | 'log'>>;
}

export interface TrackerHandle {
  /** Base URL with a trailing slash, e.g. http://127.0.0.1:7000/ */
  url: string;
  close(): Promise<void>;
  /** For in-process benchmarks and tests. */
  core: TrackerCore;
}

export async function startTracker(opts: TrackerOptions): Promise<TrackerHandle> {
  mkdirSync(opts.dataDir, { recursive: true });
  const log = opts.log;
  // HA mode is switched on by a ZooKeeper connect string; without one the tracker leads alone.
  const ha = opts.config.ha;
  const zkLeadership = ha.zk && !opts.core?.leadership
    ? new ZkLeadership({ connect: ha.zk, root: ha.root, sessionTimeoutMs: ha.sessionTimeoutMs, leaseFraction: ha.leaseFraction }, log.child({ part: 'ha' }))
    : undefined;
  const core = new TrackerCore({ ...opts.core, ...(zkLeadership ? { leadership: zkLeadership } : {}), config: opts.config, dataDir: opts.dataDir, secret: opts.secret, log });
  let server;
  try {
    server = await listen(createTrackerApp(core, opts.config, opts.secret, log, opts.adminToken), opts.host, opts.port);
  } catch (error) {
    await core.close();
    throw error;
  }
  core.start();
  // A storage node whose ephemeral znode vanished is dead now (its repair grace starts now), not
  // after nodeDeadAfterMs without heartbeats; a heartbeat still arriving makes it alive again.
  zkLeadership?.onPresenceLost((kind, ids) => {
    if (kind === 'nodes') for (const id of ids) core.nodeLeft(id);
  });
  const address = server.address() as AddressInfo;
  // A wildcard bind is reachable on loopback; the URL is what local tools and tests dial.
  const bound = address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '::1' : address.address;
  const host = bound.includes(':') ? `[${bound}]` : bound;
  const url = `http://${host}:${address.port}/`;
  // Joins the election only once it can answer: the leader's URL is where standbys forward writes.
  zkLeadership?.start(url, ha.trackerId ?? `tracker-${address.port}`);
  log.info('tracker listening', { url, dataDir: opts.dataDir, epoch: core.leadership.epoch, leader: core.leadership.leader });
  let closing: Promise<void> | undefined;
  return {
    url,
    core,
    close: () => {
      closing ??= (async () => {
        await closeServer(server);
        await core.close();
        log.info('tracker stopped');
      })();
      return closing;
    },
  };
}
