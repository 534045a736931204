// `ktv up` / `npm start`: a whole cluster on this machine as child processes (one role per
// process, exactly as across machines), state under --data so a restart keeps everything.
// Ctrl-C stops every child by its pid; a child that dies on its own is restarted with backoff.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterView } from '../common/contracts.js';
import { createLogger, type Logger } from '../common/log.js';
import type { Config } from '../config/schema.js';
import { rpc } from '../common/http.js';
import { configFrom, parse, UsageError } from './args.js';

const KTV_BIN = fileURLToPath(new URL('../../bin/ktv.cjs', import.meta.url));
const NODES = 3;
const DISKS_PER_NODE = 2;
/** A child that keeps dying is given up on: at most this many restarts per minute. */
const MAX_RESTARTS_PER_MIN = 5;
const STOP_GRACE_MS = 8000;

interface Secrets {
  clusterSecret: string;
  adminToken: string;
}

/** Secrets live under the data dir (mode 0600) so a restart keeps talking to the same nodes. */
export function loadOrCreateSecrets(dataDir: string): Secrets {
  const file = join(dataDir, 'secrets.json');
  if (existsSync(file)) {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<Secrets>;
    if (typeof parsed.clusterSecret === 'string' && typeof parsed.adminToken === 'string') return parsed as Secrets;
    throw new UsageError(`${file} is damaged; remove it to generate new secrets`);
  }
  const secrets = {
    clusterSecret: process.env.KTV_CLUSTER_SECRET || randomBytes(24).toString('hex'),
    adminToken: process.env.KTV_ADMIN_TOKEN || randomBytes(24).toString('hex'),
  };
  writeFileSync(file, JSON.stringify(secrets, null, 2) + '\n', { mode: 0o600 });
  return secrets;
}

interface ChildSpec {
  name: string;
  args: string[];
  /** Default: this node binary running bin/ktv.cjs (every role); the local ZooKeeper is java. */
  command?: string;
  proc?: ChildProcess;
  restarts: number[];
}

export async function runUp(argv: string[]): Promise<number> {
  const { values } = parse(argv, { data: { type: 'string' }, ha: { type: 'boolean' } });
  const config = configFrom(values);
  const ha = values.ha === true;
  const dataDir = resolve(values.data ?? './data');
  mkdirSync(join(dataDir, 'logs'), { recursive: true });
  const secrets = loadOrCreateSecrets(dataDir);
  const log = createLogger('up', config.logLevel);
  const host = config.host;
  const trackerUrl = `http://${host}:${config.ports.tracker}/`;

  // Flags every child shares, so `--config`/`--set` tune the whole local cluster.
  const shared: string[] = [];
  if (values.config) shared.push('--config', resolve(values.config));
  for (const s of values.set ?? []) shared.push('--set', s);
  if (values.host) shared.push('--host', values.host);

  const specs: ChildSpec[] = [];
  // --ha: a local ZooKeeper and two trackers (ports.tracker and ports.tracker + 1); every other
  // role gets both trackers, so killing either one is a failover, not an outage.
  const trackerUrls = [trackerUrl];
  if (ha) {
    const zkConnect = `127.0.0.1:${config.ha.localZkPort}`;
    specs.push(localZooKeeper(dataDir, config));
    const secondPort = config.ports.tracker + 1;
    trackerUrls.push(`http://${host}:${secondPort}/`);
    specs.push({ name: 'tracker', args: ['tracker', '--port', String(config.ports.tracker), '--data', join(dataDir, 'tracker'), '--zk', zkConnect, '--id', 't1', ...shared], restarts: [] });
    specs.push({ name: 'tracker2', args: ['tracker', '--port', String(secondPort), '--data', join(dataDir, 'tracker2'), '--zk', zkConnect, '--id', 't2', ...shared], restarts: [] });
  } else {
    specs.push({ name: 'tracker', args: ['tracker', '--port', String(config.ports.tracker), '--data', join(dataDir, 'tracker'), ...shared], restarts: [] });
  }
  const trackerList = trackerUrls.join(',');
  // HA: storage nodes and streamers register ephemeral znodes too (trackers see them leave).
  const zkFlag = ha ? ['--zk', `127.0.0.1:${config.ha.localZkPort}`] : [];
  const libraryUrl = `http://${host}:${config.ports.library}/`;
  specs.push({ name: 'library', args: ['library', '--port', String(config.ports.library), '--tracker', trackerList, ...shared], restarts: [] });
  const playerUrl = `http://${host}:${config.ports.streamer}/`;
  specs.push({ name: 'streamer', args: ['streamer', '--port', String(config.ports.streamer), '--tracker', trackerList, ...zkFlag, ...shared], restarts: [] });
  for (let n = 1; n <= NODES; n++) {
    const disks: string[] = [];
    for (let d = 1; d <= DISKS_PER_NODE; d++) disks.push('--disk', join(dataDir, `node${n}`, `disk${d}`));
    specs.push({
      name: `node${n}`,
      args: ['storage-node', '--id', `node${n}`, '--port', String(config.ports.storageNodeBase + n - 1), '--tracker', trackerList, ...disks, ...zkFlag, ...shared],
      restarts: [],
    });
  }

  let stopping = false;
  const env = { ...process.env, KTV_CLUSTER_SECRET: secrets.clusterSecret, KTV_ADMIN_TOKEN: secrets.adminToken };
  const writeState = (): void => {
    const state = { pid: process.pid, trackerUrl, trackerUrls, children: specs.map((s) => ({ name: s.name, pid: s.proc?.pid ?? null })) };
    writeFileSync(join(dataDir, 'ktv-up.json'), JSON.stringify(state, null, 2) + '\n');
  };

  const start = (spec: ChildSpec): void => {
    const out = createWriteStream(join(dataDir, 'logs', `${spec.name}.log`), { flags: 'a' });
    const proc = spec.command
      ? spawn(spec.command, spec.args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, [KTV_BIN, ...spec.args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout?.pipe(out, { end: false });
    proc.stderr?.pipe(out, { end: false });
    spec.proc = proc;
    writeState();
    proc.once('exit', (code, signal) => {
      out.end();
      if (stopping) return;
      const now = Date.now();
      spec.restarts = spec.restarts.filter((t) => now - t < 60_000);
      if (spec.restarts.length >= MAX_RESTARTS_PER_MIN) {
        log.error('child keeps dying; not restarting it', { child: spec.name, code, signal, log: join(dataDir, 'logs', `${spec.name}.log`) });
        return;
      }
      spec.restarts.push(now);
      const delayMs = 500 * 2 ** (spec.restarts.length - 1);
      log.warn('child exited; restarting', { child: spec.name, code, signal, delayMs });
      setTimeout(() => {
        if (!stopping) start(spec);
      }, delayMs);
    });
  };

  const stopAll = async (): Promise<void> => {
    stopping = true;
    const running = specs.map((s) => s.proc).filter((p): p is ChildProcess => !!p && p.exitCode === null && p.signalCode === null);
    await Promise.all(
      running.map(
        (p) =>
          new Promise<void>((done) => {
            const kill = setTimeout(() => p.kill('SIGKILL'), STOP_GRACE_MS);
            p.once('exit', () => {
              clearTimeout(kill);
              done();
            });
            p.kill('SIGTERM');
          }),
      ),
    );
  };

  let signalled = false;
  const onSignal = (): void => {
    if (signalled) return;
    signalled = true;
    process.stdout.write('\nstopping the cluster…\n');
    stopAll().then(() => {
      process.stdout.write('stopped.\n');
      process.exit(0);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  for (const spec of specs) start(spec);

  // Wait until every node has reported; a first start on an empty disk takes a second or two.
  const deadline = Date.now() + 60_000;
  let view: ClusterView | undefined;
  while (Date.now() < deadline && !signalled) {
    try {
      view = await rpc<ClusterView>(trackerUrl, '/api/v1/cluster', { timeoutMs: 1000 });
      const up = (base: string): Promise<boolean> => fetch(new URL('/health', base), { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
      const [libraryUp, streamerUp] = await Promise.all([up(libraryUrl), up(playerUrl)]);
      // HA: writes (the demo library) need a leader; the election takes a moment after start.
      const leads = !ha || (await Promise.all(trackerUrls.map((u) => rpc<{ leader?: boolean }>(u, '/health', { timeoutMs: 1000 }).then((h) => h.leader === true, () => false)))).some(Boolean);
      if (view.nodes.filter((n) => n.state === 'alive').length >= NODES && libraryUp && streamerUp && leads) break;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  if (signalled) return -1;
  if (!view || view.nodes.filter((n) => n.state === 'alive').length < NODES) {
    process.stdout.write(`the cluster did not come up within 60 s; see the logs in ${join(dataDir, 'logs')}\n`);
    await stopAll();
    return 1;
  }
  const lines = [
    `KTV cluster up: open the room player at ${playerUrl}   (data ${dataDir})`,
    `  player        ${playerUrl}   (room player; HLS at ${playerUrl}hls/{songId}/master.m3u8)`,
    ...(ha
      ? [`  trackers      ${trackerList}   (HA over the local ZooKeeper 127.0.0.1:${config.ha.localZkPort}; ktv status --tracker ${trackerList})`]
      : [`  tracker       ${trackerUrl}   (ktv status --tracker ${trackerUrl})`]),
    ...view.nodes.map((n) => `  storage node  ${n.url}   ${n.id}: ${n.disks.length} disks`),
    `  library       ${libraryUrl}   (upload page; admin token in secrets.json)`,
    `  logs          ${join(dataDir, 'logs')}`,
    `  secrets       ${join(dataDir, 'secrets.json')}`,
    `  blobs ${view.blobs.total}, songs ${view.songs}`,
    'Ctrl-C stops everything.',
  ];
  process.stdout.write(lines.join('\n') + '\n');
  await seedDemo(config, dataDir, trackerUrls, secrets, log, () => signalled);
  return -1;
}

/** `ktv up --ha`: one standalone ZooKeeper server with its state under DATA/zookeeper. */
function localZooKeeper(dataDir: string, config: Config): ChildSpec {
  const dir = join(dataDir, 'zookeeper');
  mkdirSync(join(dir, 'data'), { recursive: true });
  const cfg = join(dir, 'zoo.cfg');
  const lines = [
    'tickTime=500',
    `dataDir=${join(dir, 'data')}`,
    `clientPort=${config.ha.localZkPort}`,
    'clientPortAddress=127.0.0.1',
    'admin.enableServer=false',
    'maxSessionTimeout=60000',
    // Local use only: old snapshots and logs are purged so DATA does not grow forever.
    'autopurge.snapRetainCount=3',
    'autopurge.purgeInterval=1',
  ];
  writeFileSync(cfg, lines.join('\n') + '\n');
  return {
    name: 'zookeeper',
    command: 'java',
    args: ['-Xmx128m', '-XX:+UseSerialGC', '-cp', config.ha.localZkClasspath, 'org.apache.zookeeper.server.quorum.QuorumPeerMain', cfg],
    restarts: [],
  };
}

/** First start only: generate and ingest the demo songs through the real ingest path. */
async function seedDemo(config: Config, dataDir: string, trackerUrls: string[], secrets: Secrets, log: Logger, stopped: () => boolean): Promise<void> {
  const lib = config.library;
  if (lib.demoSongs <= 0 || existsSync(join(dataDir, 'demo-seeded.json'))) return;
  const workDir = join(dataDir, 'work');
  mkdirSync(workDir, { recursive: true });
  const { seedDemoLibrary } = await import('../library/demo-seed.js');
  const { TrackerClient } = await import('../common/tracker-client.js');
  process.stdout.write(`seeding the demo library (${lib.demoSongs} songs, first start only)…\n`);
  const ids = await seedDemoLibrary(
    { tracker: new TrackerClient(trackerUrls, secrets.clusterSecret, config.rpcTimeoutMs), secret: secrets.clusterSecret, config, log: createLogger('up', 'warn', { part: 'demo' }), workDir },
    {
      dataDir,
      count: lib.demoSongs,
      durationS: lib.demoSongDurationS,
      width: lib.demoWidthPx,
      height: lib.demoHeightPx,
      onSong: (i, total, title, result, error) => {
        if (stopped()) return;
        process.stdout.write(error ? `  demo ${i}/${total} ${title}: failed: ${error}\n` : `  demo ${i}/${total} ${title}: ${result!.id}\n`);
      },
    },
  ).catch((error: unknown) => {
    log.error('demo library failed', { error: (error as Error).message });
    return [];
  });
  if (!stopped()) process.stdout.write(`demo library ready: ${ids.length} songs\n`);
}
