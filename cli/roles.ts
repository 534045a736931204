// Long-running roles: parse flags, load config, start, stop cleanly on SIGTERM/SIGINT.
import { createLogger } from '../common/log.js';
import { configFrom, parse, portFlag, requireEnvSecret, trackerUrls, UsageError } from './args.js';

/** Runs until SIGTERM/SIGINT, then closes the role and exits 0. Returns -1: exit code set later. */
function untilSignal(close: () => Promise<void>, log: ReturnType<typeof createLogger>): number {
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal });
    // A clean close must not hang the operator's Ctrl-C: bound it.
    const force = setTimeout(() => process.exit(0), 5000);
    force.unref();
    close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error('error while stopping', { error: (error as Error).message });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return -1;
}

export async function runTracker(argv: string[]): Promise<number> {
  const { values } = parse(argv, { port: { type: 'string' }, data: { type: 'string' }, zk: { type: 'string' }, id: { type: 'string' } });
  // --zk host:port,… switches HA on (the config key ha.zk too); --id names this tracker in the election.
  const config = configFrom({ ...values, set: [...(values.set ?? []), ...haSets(values.zk, values.id)] });
  if (!values.data) throw new UsageError('--data DIR is required');
  const log = createLogger('tracker', config.logLevel);
  const { startTracker } = await import('../tracker/index.js');
  const handle = await startTracker({
    config,
    host: config.host,
    port: portFlag(values.port, config.ports.tracker),
    dataDir: values.data,
    secret: requireEnvSecret('KTV_CLUSTER_SECRET'),
    adminToken: requireEnvSecret('KTV_ADMIN_TOKEN'),
    log,
  });
  log.info('tracker listening', { url: handle.url, pid: process.pid });
  return untilSignal(() => handle.close(), log);
}

/** `--zk` / `--id` of the tracker as config overrides (JSON strings: a connect string is never a number). */
function haSets(zk: string | undefined, id: string | undefined): string[] {
  const sets: string[] = [];
  if (zk !== undefined) {
    const hosts = zk.split(',').map((h) => h.trim());
    if (hosts.some((h) => !/^[A-Za-z0-9.\-\[\]:]+:\d{1,5}(\/[A-Za-z0-9/_.-]*)?$/.test(h))) throw new UsageError(`--zk ${zk}: expected host:port[,host:port…]`);
    sets.push(`ha.zk=${JSON.stringify(hosts.join(','))}`);
  }
  if (id !== undefined) sets.push(`ha.trackerId=${JSON.stringify(id)}`);
  return sets;
}

export async function runStorageNode(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    port: { type: 'string' },
    tracker: { type: 'string' },
    disk: { type: 'string', multiple: true },
    id: { type: 'string' },
    zk: { type: 'string' },
  });
  // --zk: register an ephemeral znode so HA trackers see this node leave (optional).
  const config = configFrom({ ...values, set: [...(values.set ?? []), ...haSets(values.zk, undefined)] });
  const disks = values.disk ?? [];
  if (disks.length === 0) throw new UsageError('at least one --disk DIR is required');
  const trackers = trackerUrls(values.tracker);
  const log = createLogger('storage-node', config.logLevel, values.id ? { node: values.id } : {});
  const { startStorageNode } = await import('../storage-node/index.js');
  const handle = await startStorageNode({
    config,
    host: config.host,
    port: portFlag(values.port, config.ports.storageNodeBase),
    trackers,
    disks,
    nodeId: values.id,
    secret: requireEnvSecret('KTV_CLUSTER_SECRET'),
    log,
  });
  log.info('storage node listening', { url: handle.url, nodeId: handle.nodeId, pid: process.pid });
  return untilSignal(() => handle.close(), log);
}

export async function runLibrary(argv: string[]): Promise<number> {
  const { values } = parse(argv, { port: { type: 'string' }, tracker: { type: 'string' } });
  const config = configFrom(values);
  const trackers = trackerUrls(values.tracker);
  const log = createLogger('library', config.logLevel);
  const { startLibrary } = await import('../library/index.js');
  const handle = await startLibrary({
    config,
    host: config.host,
    port: portFlag(values.port, config.ports.library),
    trackers,
    secret: requireEnvSecret('KTV_CLUSTER_SECRET'),
    adminToken: requireEnvSecret('KTV_ADMIN_TOKEN'),
    log,
  });
  log.info('library listening', { url: handle.url, pid: process.pid });
  return untilSignal(() => handle.close(), log);
}

export async function runStreamer(argv: string[]): Promise<number> {
  const { values } = parse(argv, { port: { type: 'string' }, tracker: { type: 'string' }, id: { type: 'string' }, 'public-url': { type: 'string' }, zk: { type: 'string' } });
  const sets = [...(values.set ?? []), ...(values['public-url'] === undefined ? [] : [`streamer.publicUrl=${values['public-url']}`]), ...haSets(values.zk, undefined)];
  const config = configFrom({ ...values, set: sets });
  const trackers = trackerUrls(values.tracker);
  const log = createLogger('streamer', config.logLevel, values.id ? { streamer: values.id } : {});
  const { startStreamer } = await import('../streamer/index.js');
  const handle = await startStreamer({
    config,
    host: config.host,
    port: portFlag(values.port, config.ports.streamer),
    trackers,
    secret: requireEnvSecret('KTV_CLUSTER_SECRET'),
    id: values.id,
    log,
  });
  log.info('streamer listening', { url: handle.url, id: handle.id, pid: process.pid });
  return untilSignal(() => handle.close(), log);
}
