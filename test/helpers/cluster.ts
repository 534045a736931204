// A real cluster for tests: one tracker and N storage nodes × M disks as separate processes on
// loopback, with short timeouts so failure handling happens within a test's patience.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterView, LocateResponse, PlacementResponse } from '../../common/contracts.js';
import { rpc, signedBlobHeaders } from '../../common/http.js';
import { asBody, freePort, Procs, tempDir, waitFor, type Proc } from './procs.js';

export const SECRET = 'test-cluster-secret-' + randomBytes(8).toString('hex');
export const ADMIN = 'test-admin-token-' + randomBytes(8).toString('hex');

/** Tunables that make failure handling quick enough for a test. */
export const FAST_CONFIG = {
  storageNode: { heartbeatIntervalMs: 200, diskFreeFloorBytes: 0 },
  tracker: { nodeDeadAfterMs: 1500, repairGraceMs: 1500, repairIntervalMs: 200, placementFreeFloorBytes: 0 },
  rpcTimeoutMs: 3000,
};

export interface NodeInfo {
  id: string;
  port: number;
  url: string;
  disks: string[];
  proc?: Proc;
}

export class TestCluster {
  readonly procs: Procs;
  readonly root: string;
  readonly configFile: string;
  trackerPort = 0;
  trackerUrl = '';
  trackerDir = '';
  tracker?: Proc;
  readonly nodes: NodeInfo[] = [];

  /** `root`: a fixed directory to keep the cluster's state in (created when missing; disks and the
   *  tracker's data persist across runs); default a fresh temp dir. */
  constructor(name: string, config: Record<string, unknown> = FAST_CONFIG, root?: string) {
    this.root = root ?? tempDir(name);
    mkdirSync(join(this.root, 'logs'), { recursive: true });
    this.procs = new Procs(join(this.root, 'logs'), { KTV_CLUSTER_SECRET: SECRET, KTV_ADMIN_TOKEN: ADMIN });
    this.configFile = join(this.root, 'config.json');
    writeFileSync(this.configFile, JSON.stringify(config));
  }

  async startTracker(): Promise<void> {
    if (!this.trackerPort) {
      this.trackerPort = await freePort();
      this.trackerUrl = `http://127.0.0.1:${this.trackerPort}/`;
      this.trackerDir = join(this.root, 'tracker');
    }
    this.tracker = this.procs.start('tracker', ['tracker', '--port', String(this.trackerPort), '--data', this.trackerDir, '--config', this.configFile]);
    await waitFor('tracker health', async () => (await fetch(new URL('/health', this.trackerUrl))).ok);
  }

  async addNode(id: string, disks = 2): Promise<NodeInfo> {
    const port = await freePort();
    const info: NodeInfo = { id, port, url: `http://127.0.0.1:${port}/`, disks: [] };
    for (let d = 1; d <= disks; d++) info.disks.push(join(this.root, id, `disk${d}`));
    this.nodes.push(info);
    await this.startNode(info);
    return info;
  }

  async startNode(info: NodeInfo): Promise<void> {
    const args = ['storage-node', '--id', info.id, '--port', String(info.port), '--tracker', this.trackerUrl, '--config', this.configFile];
    for (const d of info.disks) args.push('--disk', d);
    info.proc = this.procs.start(info.id, args);
    await waitFor(`${info.id} health`, async () => (await fetch(new URL('/health', info.url))).ok);
  }

  cluster(): Promise<ClusterView> {
    return rpc<ClusterView>(this.trackerUrl, '/api/v1/cluster', { timeoutMs: 3000 });
  }

  async waitAlive(count: number): Promise<ClusterView> {
    return waitFor(`${count} alive nodes`, async () => {
      const v = await this.cluster();
      return v.nodes.filter((n) => n.state === 'alive').length === count ? v : undefined;
    });
  }

  locate(id: string): Promise<LocateResponse> {
    return rpc<LocateResponse>(this.trackerUrl, `/internal/v1/blobs/${id}`, { timeoutMs: 3000, secret: SECRET });
  }

  /** Writes a blob the way the library will: placement from the tracker, then a PUT to each target. */
  async writeBlob(data: Buffer, kind: 'data' | 'manifest' = 'data'): Promise<{ id: string; placement: PlacementResponse }> {
    const id = createHash('sha256').update(data).digest('hex');
    const placement = await rpc<PlacementResponse>(this.trackerUrl, '/internal/v1/placement', {
      body: { size: data.length, excludeNodes: [] },
      secret: SECRET,
      timeoutMs: 3000,
    });
    for (const t of placement.targets) {
      const url = new URL(`/internal/v1/blobs/${id}?disk=${t.diskId}`, t.url);
      const res = await fetch(url, {
        method: 'PUT',
        headers: { ...signedBlobHeaders(SECRET, 'PUT', url), 'x-ktv-kind': kind, 'content-length': String(data.length) },
        body: asBody(data),
      });
      const text = await res.text();
      if (res.status !== 201 && res.status !== 200) throw new Error(`PUT ${url}: ${res.status} ${text}`);
    }
    return { id, placement };
  }

  async close(): Promise<void> {
    await this.procs.killAll();
  }
}

export async function readRange(nodeUrl: string, id: string, range?: string): Promise<{ status: number; body: Buffer; headers: Headers }> {
  const url = new URL(`/internal/v1/blobs/${id}`, nodeUrl);
  const headers: Record<string, string> = signedBlobHeaders(SECRET, 'GET', url);
  if (range) headers.range = range;
  try {
    const res = await fetch(url, { headers });
    const body = Buffer.from(await res.arrayBuffer());
    return { status: res.status, body, headers: res.headers };
  } catch (error) {
    // A body cut short (a corrupt chunk found after the headers went out) surfaces here.
    return { status: -1, body: Buffer.alloc(0), headers: new Headers({ 'x-error': (error as Error).message }) };
  }
}
