// Real ZooKeeper servers for tests (Debian's zookeeper 3.8, run with the system JVM): one
// standalone server or an N-server quorum on free loopback ports, each in its own temp dir with
// its own zoo.cfg (and myid for a quorum). Every server is started and stopped by its pid, also
// when a test fails (call `stopAll()` in `after`).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort, waitFor } from './procs.js';

/** tickTime 250 ms: sessions from 500 ms (2 ticks); the max is raised so any test timeout fits. */
const TICK_MS = 250;
const CLASSPATH = '/etc/zookeeper/conf:/usr/share/java/*';

interface ServerSlot {
  n: number;
  clientPort: number;
  dir: string;
  cfg: string;
  logFile: string;
  child?: ChildProcess;
  exited?: Promise<void>;
}

/** One four-letter-word command (`srvr`, `ruok`) → its answer, or '' if the server did not answer. */
export function fourLetter(port: number, word: string, timeoutMs = 1500): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    const socket = connect(port, '127.0.0.1');
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('connect', () => socket.write(word));
    socket.on('data', (d) => (out += d.toString()));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

export class ZooKeeperServers {
  private readonly slots: ServerSlot[] = [];

  private constructor(readonly root: string) {}

  /** Starts `count` servers (1 = standalone, 3 = a quorum) and waits until they serve. */
  static async start(root: string, count = 1): Promise<ZooKeeperServers> {
    const zk = new ZooKeeperServers(root);
    const ports: Array<{ client: number; peer: number; election: number }> = [];
    for (let i = 0; i < count; i++) ports.push({ client: await freePort(), peer: await freePort(), election: await freePort() });
    for (let i = 0; i < count; i++) {
      const n = i + 1;
      const dir = join(root, `zk${n}`);
      mkdirSync(join(dir, 'data'), { recursive: true });
      const lines = [
        `tickTime=${TICK_MS}`,
        'initLimit=20',
        'syncLimit=8',
        `dataDir=${join(dir, 'data')}`,
        `clientPort=${ports[i]!.client}`,
        'clientPortAddress=127.0.0.1',
        'admin.enableServer=false',
        '4lw.commands.whitelist=srvr,ruok',
        'maxSessionTimeout=60000',
        'maxClientCnxns=100',
      ];
      if (count > 1) {
        for (let j = 0; j < count; j++) lines.push(`server.${j + 1}=127.0.0.1:${ports[j]!.peer}:${ports[j]!.election}`);
        writeFileSync(join(dir, 'data', 'myid'), `${n}\n`);
      }
      const cfg = join(dir, 'zoo.cfg');
      writeFileSync(cfg, lines.join('\n') + '\n');
      zk.slots.push({ n, clientPort: ports[i]!.client, dir, cfg, logFile: join(dir, 'zookeeper.log') });
    }
    try {
      for (const s of zk.slots) zk.spawnSlot(s);
      await zk.waitServing();
    } catch (error) {
      await zk.stopAll();
      throw error;
    }
    return zk;
  }

  get connectString(): string {
    return this.slots.map((s) => `127.0.0.1:${s.clientPort}`).join(',');
  }

  get size(): number {
    return this.slots.length;
  }

  pid(n: number): number | undefined {
    return this.slot(n).child?.pid;
  }

  log(n: number): string {
    try {
      return readFileSync(this.slot(n).logFile, 'utf8');
    } catch {
      return '';
    }
  }

  private slot(n: number): ServerSlot {
    const s = this.slots[n - 1];
    if (!s) throw new Error(`no ZooKeeper server ${n}`);
    return s;
  }

  private spawnSlot(s: ServerSlot): void {
    const out = createWriteStream(s.logFile, { flags: 'a' });
    const child = spawn('java', ['-Xmx96m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-cp', CLASSPATH, 'org.apache.zookeeper.server.quorum.QuorumPeerMain', s.cfg], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: s.dir,
    });
    child.stdout!.pipe(out, { end: false });
    child.stderr!.pipe(out, { end: false });
    s.child = child;
    s.exited = new Promise((resolve) =>
      child.once('exit', () => {
        setTimeout(() => out.end(), 50);
        resolve();
      }),
    );
  }

  /** `srvr` mode of server n: 'standalone' | 'leader' | 'follower' | '' (not serving). */
  async mode(n: number): Promise<string> {
    const answer = await fourLetter(this.slot(n).clientPort, 'srvr');
    return /Mode: (\w+)/.exec(answer)?.[1] ?? '';
  }

  /** Waits until every running server serves (standalone, or leader/follower in a quorum). */
  async waitServing(timeoutMs = 60_000): Promise<void> {
    for (const s of this.slots) {
      if (!s.child || s.child.exitCode !== null || s.child.signalCode !== null) continue;
      await waitFor(`ZooKeeper server ${s.n} serving`, async () => (await this.mode(s.n)) !== '', timeoutMs, 200);
    }
  }

  /** SIGKILL one server by pid and wait for it to exit. */
  async kill(n: number): Promise<void> {
    const s = this.slot(n);
    if (!s.child || s.child.exitCode !== null || s.child.signalCode !== null) return;
    try {
      process.kill(s.child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
    await s.exited;
  }

  /** Starts a stopped server again with its data dir (its sessions and znodes come back). */
  restart(n: number): void {
    const s = this.slot(n);
    if (s.child && s.child.exitCode === null && s.child.signalCode === null) throw new Error(`ZooKeeper server ${n} is running`);
    this.spawnSlot(s);
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.slots.map((s) => this.kill(s.n)));
  }
}
