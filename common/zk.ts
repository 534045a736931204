// A ZooKeeper session with a typed, promise-based surface over the npm `zookeeper` client (the
// official C client as a native addon, driven from this process's event loop). One object = one
// session: when the session expires the object is dead and its owner makes a new one (ephemeral
// znodes and watches belong to a session, so a "reconnect" that silently changed the session would
// hide the one event that matters for fencing).
//
// Why a lease (`lastOkSentMs`): the client runs on our event loop, so after a SIGSTOP, a long GC or a
// blocked loop, our timers may run before the client has told us that the session expired. Every
// decision that needs the session alive asks `confidentWithin(ms)`: did a request *sent* less than
// `ms` ago get an answer? The server cannot have expired the session before (that send + its
// timeout), so with `ms` a safe fraction of the timeout nobody else can have won in the meantime.
import { createRequire } from 'node:module';
import type { Logger } from './log.js';

/** The part of the `zookeeper` client we use (its own typings are not module-shaped). */
interface NativeClient {
  on(event: 'connect' | 'connecting' | 'close', listener: (...args: unknown[]) => void): void;
  init(config: Record<string, unknown>): void;
  close(): void;
  readonly timeout: number;
  create(path: string, data: string | Buffer, flags: number): Promise<string>;
  exists(path: string, watch: boolean): Promise<ZkStat | null>;
  w_exists(path: string, watchCb: (type: number, state: number, path: string) => void): Promise<ZkStat | null>;
  get(path: string, watch: boolean): Promise<[ZkStat, Buffer | string]>;
  w_get(path: string, watchCb: (type: number, state: number, path: string) => void): Promise<[ZkStat, Buffer | string]>;
  get_children(path: string, watch: boolean): Promise<string[]>;
  w_get_children(path: string, watchCb: (type: number, state: number, path: string) => void): Promise<string[]>;
  set(path: string, data: string | Buffer, version: number): Promise<ZkStat>;
  delete_(path: string, version: number): Promise<void>;
}
type NativeClientClass = (new (config: Record<string, unknown>) => NativeClient) & { constants: Record<string, number> };

export interface ZkStat {
  version: number;
  ephemeralOwner?: unknown;
}

const require = createRequire(import.meta.url);
let clientClass: NativeClientClass | undefined;
function loadClient(): NativeClientClass {
  clientClass ??= require('zookeeper') as NativeClientClass;
  return clientClass;
}

/** ZooKeeper result codes we act on (zookeeper.h). */
export const ZK = { NONODE: -101, NODEEXISTS: -110, BADVERSION: -103, EPHEMERAL: 1, SEQUENCE: 2 } as const;

/** The numeric ZooKeeper code of a failed call (the client rejects with "CODE message"), or 0. */
export function zkCode(error: unknown): number {
  const m = /^(-?\d+)\b|result: "\w+ (-?\d+)"/.exec((error as Error)?.message ?? '');
  return m ? Number(m[1] ?? m[2]) : 0;
}

export type ZkState = 'connecting' | 'connected' | 'expired' | 'closed';

export interface ZkSessionOptions {
  /** host:port[,host:port…][/chroot] */
  connect: string;
  sessionTimeoutMs: number;
  log: Logger;
  /** State changes (also 'expired': the object is dead, make a new one). */
  onState?: (state: ZkState) => void;
  /** Monotonic clock; default performance.now (never the wall clock: it may jump). */
  monoNow?: () => number;
}

/** Deadline of one ZooKeeper call: the session timeout bounds it anyway, this bounds our wait. */
const CALL_DEADLINE_FRACTION = 1;

export class ZkSession {
  state: ZkState = 'connecting';
  /** Monotonic time at which the latest answered request was sent (-Infinity: never). */
  lastOkSentMs = Number.NEGATIVE_INFINITY;
  private readonly client: NativeClient;
  private readonly monoNow: () => number;
  private connectedWaiters: Array<() => void> = [];

  constructor(private readonly o: ZkSessionOptions) {
    this.monoNow = o.monoNow ?? (() => performance.now());
    const Client = loadClient();
    this.client = new Client({
      connect: o.connect,
      timeout: o.sessionTimeoutMs,
      // 0 silences the C client: its plain-text lines would break our one-JSON-object-per-line
      // logs; every state change and failed call is logged by us instead.
      debug_level: 0,
      host_order_deterministic: false,
    });
    this.client.on('connect', () => {
      if (this.state === 'closed' || this.state === 'expired') return;
      this.state = 'connected';
      // Not a lease renewal: this event may have waited in our socket through a pause, so only
      // a request we time ourselves renews it.
      for (const w of this.connectedWaiters.splice(0)) w();
      o.onState?.('connected');
    });
    this.client.on('connecting', () => {
      if (this.state !== 'connected') return;
      this.state = 'connecting';
      o.onState?.('connecting');
    });
    this.client.on('close', () => {
      // The native client closes itself on expiry (and on our close()).
      if (this.state === 'closed') return;
      this.state = 'expired';
      o.onState?.('expired');
    });
    this.client.init({});
  }

  /** The negotiated session timeout (the server may clamp ours to [2, 20] × its tickTime). */
  get negotiatedTimeoutMs(): number {
    const t = this.client.timeout;
    return typeof t === 'number' && t > 0 ? t : this.o.sessionTimeoutMs;
  }

  /** True when a request sent less than `ms` ago was answered: the session cannot have expired since. */
  confidentWithin(ms: number): boolean {
    return this.state === 'connected' && this.monoNow() - this.lastOkSentMs < ms;
  }

  waitConnected(timeoutMs: number): Promise<void> {
    if (this.state === 'connected') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ZooKeeper connection within ${timeoutMs} ms (${this.o.connect})`)), timeoutMs);
      this.connectedWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Runs one call with a deadline and records when an answered call was sent (the lease). */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.state === 'expired' || this.state === 'closed') throw new Error(`ZooKeeper session ${this.state} (${what})`);
    const sentMs = this.monoNow();
    let timer: NodeJS.Timeout | undefined;
    const deadlineMs = this.o.sessionTimeoutMs * CALL_DEADLINE_FRACTION;
    try {
      const result = await Promise.race([
        fn(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`ZooKeeper ${what}: no answer within ${deadlineMs} ms`)), deadlineMs);
        }),
      ]);
      this.lastOkSentMs = Math.max(this.lastOkSentMs, sentMs);
      return result;
    } catch (error) {
      // A ZooKeeper "no" (no node, exists, bad version) is an answer too.
      const code = zkCode(error);
      if (code === ZK.NONODE || code === ZK.NODEEXISTS || code === ZK.BADVERSION) this.lastOkSentMs = Math.max(this.lastOkSentMs, sentMs);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  create(path: string, data: string, flags = 0): Promise<string> {
    return this.call(`create ${path}`, () => this.client.create(path, data, flags));
  }

  /** Creates every missing persistent znode on the way to `path` (like mkdir -p). */
  async mkdirp(path: string): Promise<void> {
    let at = '';
    for (const part of path.split('/').filter(Boolean)) {
      at += `/${part}`;
      try {
        await this.create(at, '', 0);
      } catch (error) {
        if (zkCode(error) !== ZK.NODEEXISTS) throw error;
      }
    }
  }

  async exists(path: string, onChange?: () => void): Promise<boolean> {
    const stat = await this.call(`exists ${path}`, () => (onChange ? this.client.w_exists(path, () => onChange()) : this.client.exists(path, false)));
    return stat !== null && stat !== undefined;
  }

  /** [data, version], or undefined when the znode does not exist. */
  async get(path: string, onChange?: () => void): Promise<{ data: string; version: number } | undefined> {
    try {
      const [stat, data] = await this.call(`get ${path}`, () => (onChange ? this.client.w_get(path, () => onChange()) : this.client.get(path, false)));
      return { data: data === null || data === undefined ? '' : data.toString(), version: stat.version };
    } catch (error) {
      if (zkCode(error) === ZK.NONODE) {
        // Watch for its creation instead, so the caller hears about it.
        if (onChange) await this.exists(path, onChange).catch(() => {});
        return undefined;
      }
      throw error;
    }
  }

  children(path: string, onChange?: () => void): Promise<string[]> {
    return this.call(`children ${path}`, () => (onChange ? this.client.w_get_children(path, () => onChange()) : this.client.get_children(path, false)));
  }

  set(path: string, data: string, version: number): Promise<ZkStat> {
    return this.call(`set ${path}`, () => this.client.set(path, data, version));
  }

  async delete(path: string, version = -1): Promise<void> {
    await this.call(`delete ${path}`, () => this.client.delete_(path, version));
  }

  /** Ends the session (the server drops its ephemeral znodes at once when it hears us). */
  close(): void {
    if (this.state === 'closed') return;
    const wasAlive = this.state !== 'expired';
    this.state = 'closed';
    this.connectedWaiters = [];
    if (wasAlive) {
      try {
        this.client.close();
      } catch (error) {
        this.o.log.warn('closing the ZooKeeper session failed', { error: (error as Error).message });
      }
    }
  }
}

/**
 * An ephemeral znode that says "this process is up" (DESIGN.md 上下线感知): created at `path`
 * with `data`, re-created in a new session after an expiry, deleted at once by a clean close.
 * A SIGKILLed process's znode goes when its session expires (the session timeout).
 */
export class ZkPresence {
  private session: ZkSession | undefined;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: { connect: string; sessionTimeoutMs: number; path: string; data: string; log: Logger }) {}

  start(): void {
    this.stopped = false;
    this.newSession();
  }

  private newSession(): void {
    if (this.stopped) return;
    this.session?.close();
    const session = new ZkSession({
      connect: this.o.connect,
      sessionTimeoutMs: this.o.sessionTimeoutMs,
      log: this.o.log,
      onState: (state) => {
        if (state === 'expired' && session === this.session) this.later('session expired');
      },
    });
    this.session = session;
    void this.register(session);
  }

  private later(why: string): void {
    if (this.stopped) return;
    this.o.log.warn('ZooKeeper presence: registering again', { path: this.o.path, why });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.newSession(), 1000);
    this.retryTimer.unref();
  }

  private async register(session: ZkSession): Promise<void> {
    try {
      await session.waitConnected(Math.max(this.o.sessionTimeoutMs, 5000));
      await session.mkdirp(this.o.path.slice(0, this.o.path.lastIndexOf('/')));
      try {
        await session.create(this.o.path, this.o.data, ZK.EPHEMERAL);
      } catch (error) {
        if (zkCode(error) !== ZK.NODEEXISTS) throw error;
        // A znode of our previous session (a restart inside the session timeout): ours now.
        await session.delete(this.o.path).catch(() => {});
        await session.create(this.o.path, this.o.data, ZK.EPHEMERAL);
      }
      this.o.log.info('registered in ZooKeeper', { path: this.o.path });
    } catch (error) {
      if (session === this.session) this.later((error as Error).message);
    }
  }

  close(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.session?.close();
    this.session = undefined;
  }
}
