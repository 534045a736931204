// `ktv <command>`: one role per process (DESIGN.md "Processes").
import { UsageError } from './args.js';

const USAGE = `usage: ktv <command> [options]

  up [--data DIR] [--ha]                whole cluster on this machine (npm start); --ha: ZooKeeper + 2 trackers
  tracker --port P --data DIR [--zk HOSTS --id ID]   one tracker (--zk: HA on ZooKeeper)
  storage-node --port P --tracker URL[,URL] --disk DIR [--disk DIR …] [--id ID] [--zk HOSTS]
                                        one storage node, one --disk per disk
  status --tracker URL [--json]         the cluster at a glance (exit 1 while a blob is lost)
  disk drain|mask|unmask NODE DISK --tracker URL [--note TEXT]
                                        operator command for one disk (KTV_ADMIN_TOKEN)
  node drain|undrain NODE --tracker URL [--note TEXT]
                                        the same for every disk of a node
  ingest FILE --tracker URL --title T --artist A --language L
         [--genre G] [--vocal-track N --backing-track M] [--vocal-channel left|right]
                                        one song; prints {"id": …}
  ingest --dir DIR --tracker URL [--jobs N]
                                        a folder with metadata.csv or metadata.json
  library --port P --tracker URL        the upload service (HTTP API + web page)
  streamer --port P --tracker URL[,URL] [--id ID] [--public-url URL] [--zk HOSTS]
                                        HLS for rooms + the room player at /
  loadtest --target URL (--streams N | --find-max) [--duration S] [--bitrate 45M] [--json FILE]
                                        paced room clients; ktv loadtest --help for the rest

every role: --config FILE, --set key.path=value, --host H
secrets: KTV_CLUSTER_SECRET, KTV_ADMIN_TOKEN from the environment`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'tracker':
      return (await import('./roles.js')).runTracker(rest);
    case 'storage-node':
      return (await import('./roles.js')).runStorageNode(rest);
    case 'status':
      return (await import('./status.js')).runStatus(rest);
    case 'disk':
      return (await import('./disk.js')).runDisk(rest);
    case 'node':
      return (await import('./disk.js')).runNode(rest);
    case 'up':
      return (await import('./up.js')).runUp(rest);
    case 'ingest':
      return (await import('./ingest.js')).runIngest(rest);
    case 'library':
      return (await import('./roles.js')).runLibrary(rest);
    case 'streamer':
      return (await import('./roles.js')).runStreamer(rest);
    case 'loadtest':
      return (await import('./loadtest.js')).runLoadtest(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${command}"; run ktv --help`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined && code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`ktv: ${error.message}\n`);
      process.exitCode = 2;
      return;
    }
    const e = error as NodeJS.ErrnoException;
    const why = e.code === 'EADDRINUSE' ? `address in use (${e.message.replace(/^listen /, '')})` : e.message;
    process.stderr.write(`ktv: ${why}\n`);
    process.exitCode = 1;
  },
);
