// A real HA cluster for tests: real ZooKeeper server(s) (helpers/zookeeper.ts), several trackers
// started with --zk, and storage nodes that report to every tracker (`--tracker a,b`). Every
// process is started and stopped by its pid (`close()` in `after`, also on failure).
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterView, PlacementResponse } from '../../common/contracts.js';
import { rpc, signedBlobHeaders } from '../../common/http.js';
import { TrackerClient } from '../../common/tracker-client.js';
import { ADMIN, FAST_CONFIG, SECRET } from './cluster.js';
import { asBody, freePort, Procs, tempDir, waitFor, type Proc } from './procs.js';
import { ZooKeeperServers } from './zookeeper.js';

export interface HaHealth {
  ok: boolean;
  leader: boolean;
  epoch: number;
  ha?: { id: string; session: string; leader: boolean; epoch: number; trackersOnline: string[]; nodesOnline: string[]; streamersOnline: string[]; lastLeader?: { id: string; url: string; epoch: number }; leaseMs: number; wins: number };
}

export interface TrackerInfo {
  id: string;
  port: number;
  url: string;
  dir: string;
  proc?: Proc;
}

export interface HaNodeInfo {
  id: string;
  port: number;
  url: string;
  disks: string[];
  /** Registers an ephemeral znode (--zk). */
  zk?: boolean;
  proc?: Proc;
}

export class HaCluster {
  readonly procs: Procs;
  readonly root: string;
  readonly configFile: string;
  readonly trackers: TrackerInfo[] = [];
  readonly nodes: HaNodeInfo[] = [];
  zk?: ZooKeeperServers;

  constructor(name: string, readonly config: Record<string, unknown>) {
    this.root = tempDir(name);
    mkdirSync(join(this.root, 'logs'));
    this.procs = new Procs(join(this.root, 'logs'), { KTV_CLUSTER_SECRET: SECRET, KTV_ADMIN_TOKEN: ADMIN });
    this.configFile = join(this.root, 'config.json');
    // Each test cluster has its own root: a ZooKeeper is never shared, but say so anyway.
    writeFileSync(this.configFile, JSON.stringify({ ...config, ha: { ...((config.ha as object | undefined) ?? {}), root: `/ktv/${name}-${randomBytes(3).toString('hex')}` } }));
  }

  async startZooKeeper(servers: number): Promise<ZooKeeperServers> {
    this.zk = await ZooKeeperServers.start(join(this.root, 'zookeeper'), servers);
    return this.zk;
  }

  /** One ZooKeeper, `trackers` trackers and `nodes` storage nodes with presence znodes; returns once one leads and writes work. */
  async startWithLeader(trackers = 2, nodes = 3): Promise<void> {
    await this.startZooKeeper(1);
    await this.addTrackers(trackers);
    for (const t of this.trackers) await this.startTracker(t);
    for (let i = 1; i <= nodes; i++) await this.addNode(`n${i}`, 1, true);
    await waitFor('one leader', () => this.soleLeader(), 20_000);
    await this.waitWritable();
  }

  get trackerList(): string {
    return this.trackers.map((t) => t.url).join(',');
  }

  async addTrackers(count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      const id = `t${this.trackers.length + 1}`;
      this.trackers.push({ id, port, url: `http://127.0.0.1:${port}/`, dir: join(this.root, id) });
    }
  }

  async startTracker(t: TrackerInfo): Promise<void> {
    t.proc = this.procs.start(t.id, ['tracker', '--port', String(t.port), '--data', t.dir, '--config', this.configFile, '--zk', this.zk!.connectString, '--id', t.id]);
    await waitFor(`${t.id} health`, async () => (await fetch(new URL('/health', t.url))).ok);
  }

  async addNode(id: string, disks = 1, zk = false): Promise<HaNodeInfo> {
    const port = await freePort();
    const info: HaNodeInfo = { id, port, url: `http://127.0.0.1:${port}/`, disks: [], zk };
    for (let d = 1; d <= disks; d++) info.disks.push(join(this.root, id, `disk${d}`));
    this.nodes.push(info);
    await this.startNode(info);
    return info;
  }

  async startNode(info: HaNodeInfo): Promise<void> {
    const args = ['storage-node', '--id', info.id, '--port', String(info.port), '--tracker', this.trackerList, '--config', this.configFile];
    for (const d of info.disks) args.push('--disk', d);
    if (info.zk) args.push('--zk', this.zk!.connectString);
    info.proc = this.procs.start(info.id, args);
    await waitFor(`${info.id} health`, async () => (await fetch(new URL('/health', info.url))).ok);
  }

  /** /health of a tracker, or undefined when it does not answer (killed, stopped). */
  async health(t: TrackerInfo, timeoutMs = 1000): Promise<HaHealth | undefined> {
    try {
      return await rpc<HaHealth>(t.url, '/health', { timeoutMs });
    } catch {
      return undefined;
    }
  }

  cluster(t: TrackerInfo): Promise<ClusterView> {
    return rpc<ClusterView>(t.url, '/api/v1/cluster', { timeoutMs: 3000 });
  }

  /** The single leader among the trackers that answer, or undefined when there is none or more than one. */
  async soleLeader(among: TrackerInfo[] = this.trackers): Promise<{ tracker: TrackerInfo; epoch: number } | undefined> {
    const answers = await Promise.all(among.map(async (t) => ({ t, h: await this.health(t) })));
    const leaders = answers.filter((a) => a.h?.leader);
    if (leaders.length !== 1) return undefined;
    return { tracker: leaders[0]!.t, epoch: leaders[0]!.h!.epoch };
  }

  client(): TrackerClient {
    return new TrackerClient(this.trackers.map((t) => t.url), SECRET, 3000);
  }

  /** A blob write as the library does it: placement through the tracker list, a PUT per target. */
  async writeBlob(data: Buffer, client = this.client()): Promise<{ id: string; placement: PlacementResponse }> {
    const id = createHash('sha256').update(data).digest('hex');
    const placement = await client.call<PlacementResponse>('/internal/v1/placement', { body: { size: data.length, excludeNodes: [] } });
    for (const t of placement.targets) {
      const url = new URL(`/internal/v1/blobs/${id}?disk=${t.diskId}`, t.url);
      const res = await fetch(url, {
        method: 'PUT',
        headers: { ...signedBlobHeaders(SECRET, 'PUT', url), 'x-ktv-kind': 'data', 'x-ktv-epoch': String(placement.epoch), 'content-length': String(data.length) },
        body: asBody(data),
      });
      const text = await res.text();
      if (res.status !== 201 && res.status !== 200) throw new Error(`PUT ${url}: ${res.status} ${text}`);
    }
    return { id, placement };
  }

  /** Waits until a placement through the tracker list succeeds (nodes alive with usable disks). */
  async waitWritable(timeoutMs = 20_000): Promise<number> {
    const client = this.client();
    return waitFor('a placement through the tracker list', async () => (await client.call<PlacementResponse>('/internal/v1/placement', { body: { size: 1000, excludeNodes: [] } })).epoch, timeoutMs, 100);
  }

  /** Sum of one counter (all label sets) on a storage node's /metrics. */
  async nodeCounter(node: HaNodeInfo, name: string, labelFilter = ''): Promise<number> {
    const text = await (await fetch(new URL('/metrics', node.url))).text();
    let sum = 0;
    for (const line of text.split('\n')) {
      if (!line.startsWith(name) || line.startsWith('#')) continue;
      const rest = line.slice(name.length);
      if (rest[0] !== '{' && rest[0] !== ' ') continue;
      if (labelFilter && !rest.includes(labelFilter)) continue;
      sum += Number(line.trim().split(/\s+/).pop());
    }
    return sum;
  }

  async close(): Promise<void> {
    // Anything we SIGSTOPped must be able to die.
    for (const p of [...this.trackers, ...this.nodes]) {
      try {
        if (p.proc) process.kill(p.proc.pid, 'SIGCONT');
      } catch {
        /* gone */
      }
    }
    await this.procs.killAll();
    await this.zk?.stopAll();
  }
}

export const HA_FAST_CONFIG = {
  ...FAST_CONFIG,
  tracker: { ...FAST_CONFIG.tracker, repairNewBlobGraceMs: 0, maintenanceWindow: '' },
};
