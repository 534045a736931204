// Tracker high availability over ZooKeeper (DESIGN.md "High availability"): the second
// implementation of `Leadership`. Layout under the cluster's root (e.g. /ktv/default):
//
//   election/c_0000000007   ephemeral sequential, {id, url}: the candidates; the lowest leads
//   epoch                   persistent counter, advanced with a versioned set (CAS) by each winner
//   leader                  persistent breadcrumb {id, url, epoch, at}: the last leader
//   trackers/<id>           ephemeral {id, url}: which trackers are online
//   nodes/<id>, streamers/<id>  ephemeral, registered by storage nodes and streamers started
//                           with --zk (common/zk.ts ZkPresence): a vanished one is reported
//
// Each candidate watches only its predecessor (no herd effect when the leader goes). Fencing: the
// leader is `leader` only while ZooKeeper answered a request it sent less than `leaseMs` ago
// (a safe fraction of the negotiated session timeout, see common/zk.ts), so a leader that is cut
// off or paused stops mutating before its session can expire, i.e. before anyone else can win;
// whatever it sent before is fenced by the storage nodes' epoch check. A leader whose lease lapses
// resigns for good (new session, new candidacy): its epoch is never reused, so every period of
// doubt ends in a higher epoch.
import { basename } from 'node:path';
import type { Logger } from '../../common/log.js';
import { ZK, zkCode, ZkSession, type ZkState } from '../../common/zk.js';
import type { Leadership } from '../leadership.js';

export interface HaSettings {
  /** ZooKeeper connect string host:port[,host:port…]. */
  connect: string;
  /** Root of this cluster's znodes, e.g. /ktv/default. */
  root: string;
  sessionTimeoutMs: number;
  /** Lease = this fraction of the negotiated session timeout (0 < f ≤ 0.8). */
  leaseFraction: number;
}

export interface LeaderInfo {
  id: string;
  url: string;
  epoch: number;
  at?: string;
}

export type PresenceKind = 'nodes' | 'streamers';

export interface HaView {
  mode: 'zookeeper';
  id: string;
  session: ZkState | 'none';
  leader: boolean;
  epoch: number;
  /** The breadcrumb: the last tracker that won, with its epoch. */
  lastLeader?: LeaderInfo;
  /** Trackers with a live ephemeral znode. */
  trackersOnline: string[];
  /** Storage nodes and streamers registered in ZooKeeper (those started with --zk). */
  nodesOnline: string[];
  streamersOnline: string[];
  leaseMs: number;
  /** Times this process won an election. */
  wins: number;
}

/** Delay before retrying a failed ZooKeeper step (bounded; the session timeout bounds each call). */
const RETRY_MS = 500;
/** Most epoch CAS attempts per win (another writer of the counter would be a bug: say so). */
const EPOCH_CAS_ATTEMPTS = 10;

function parseLeader(text: string): LeaderInfo | undefined {
  try {
    const v = JSON.parse(text) as Partial<LeaderInfo>;
    if (typeof v.id === 'string' && typeof v.url === 'string' && typeof v.epoch === 'number' && Number.isSafeInteger(v.epoch)) {
      return { id: v.id, url: v.url, epoch: v.epoch, ...(typeof v.at === 'string' ? { at: v.at } : {}) };
    }
  } catch {
    /* not ours */
  }
  return undefined;
}

function sequenceOf(name: string): number {
  const m = /(\d+)$/.exec(name);
  return m ? Number(m[1]) : Number.MAX_SAFE_INTEGER;
}

export class ZkLeadership implements Leadership {
  private session: ZkSession | undefined;
  /** Incremented with every new session; async steps of an older one stop. */
  private generation = 0;
  private elected = false;
  private currentEpoch = 0;
  private lastLeader: LeaderInfo | undefined;
  private trackersOnline: string[] = [];
  private readonly online: Record<PresenceKind, string[]> = { nodes: [], streamers: [] };
  private readonly presenceListeners: Array<(kind: PresenceKind, goneIds: string[]) => void> = [];
  private myCandidate = '';
  private url = '';
  private trackerId = '';
  private stopped = true;
  private renewTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private winning = false;
  private contending = false;
  private contendAgain = false;
  private wins = 0;
  private readonly listeners: Array<(leader: boolean, epoch: number) => void> = [];

  constructor(private readonly s: HaSettings, private readonly log: Logger) {
    if (!(s.leaseFraction > 0 && s.leaseFraction <= 0.8)) throw new Error('ha.leaseFraction must be in (0, 0.8]');
  }

  private get leaseMs(): number {
    return Math.floor((this.session?.negotiatedTimeoutMs ?? this.s.sessionTimeoutMs) * this.s.leaseFraction);
  }

  /** Mutations are allowed only while this is true; checked before every send (core.ts). */
  get leader(): boolean {
    if (!this.elected || !this.session) return false;
    if (this.session.confidentWithin(this.leaseMs)) return true;
    this.checkLease();
    return false;
  }

  /** Our epoch while we lead; otherwise the newest we know of (so nodes learn it from standbys too). */
  get epoch(): number {
    return Math.max(this.currentEpoch, this.lastLeader?.epoch ?? 0);
  }

  /** Where writes go: the last leader's URL when it is not us. */
  leaderUrl(): string | undefined {
    if (this.leader) return this.url;
    const l = this.lastLeader;
    return l && l.id !== this.trackerId ? l.url : undefined;
  }

  onChange(listener: (leader: boolean, epoch: number) => void): void {
    this.listeners.push(listener);
  }

  /** Storage nodes or streamers whose ephemeral znode vanished (session closed or expired). */
  onPresenceLost(listener: (kind: PresenceKind, goneIds: string[]) => void): void {
    this.presenceListeners.push(listener);
  }

  view(): HaView {
    return {
      mode: 'zookeeper',
      id: this.trackerId,
      session: this.session?.state ?? 'none',
      leader: this.leader,
      epoch: this.epoch,
      ...(this.lastLeader ? { lastLeader: this.lastLeader } : {}),
      trackersOnline: this.trackersOnline,
      nodesOnline: this.online.nodes,
      streamersOnline: this.online.streamers,
      leaseMs: this.leaseMs,
      wins: this.wins,
    };
  }

  /** Joins the election as `trackerId` at `url` (the tracker's own base URL, for forwarding). */
  start(url: string, trackerId: string): void {
    this.url = url;
    this.trackerId = trackerId;
    this.stopped = false;
    this.newSession();
    const renewEveryMs = Math.max(100, Math.floor(this.s.sessionTimeoutMs / 8));
    this.renewTimer = setInterval(() => this.renew(), renewEveryMs);
    this.renewTimer.unref();
  }

  async close(): Promise<void> {
    this.stopped = true;
    clearInterval(this.renewTimer);
    clearTimeout(this.retryTimer);
    this.setElected(false, 'tracker stopping');
    this.generation++;
    this.session?.close();
    this.session = undefined;
  }

  private setElected(value: boolean, why: string): void {
    if (this.elected === value) return;
    this.elected = value;
    if (value) this.log.info('became the leader', { epoch: this.currentEpoch, why });
    else this.log.warn('not the leader any more: no mutation from here on', { epoch: this.currentEpoch, why });
    for (const l of this.listeners) l(value, this.currentEpoch);
  }

  /** Lease renewal: one cheap read; its answer is what keeps `leader` true. */
  private renew(): void {
    const session = this.session;
    if (this.stopped || !session) return;
    if (session.state === 'connected') {
      session.exists(this.myCandidate || this.s.root).then(
        (exists) => {
          if (!exists && this.myCandidate && session === this.session) this.restart('our candidate znode is gone');
        },
        () => {},
      );
    }
    this.checkLease();
  }

  /** A leader without a fresh answer past the lease resigns: new session, new candidacy, never the same epoch again. */
  private checkLease(): void {
    if (!this.elected || !this.session || this.stopped) return;
    if (this.session.state === 'connected' && this.session.confidentWithin(this.leaseMs)) return;
    if (performance.now() - this.session.lastOkSentMs < this.leaseMs) return; // disconnected, but still inside the lease: not leading, may resume
    this.restart(`no answer from ZooKeeper for longer than the lease (${this.leaseMs} ms)`);
  }

  private restart(why: string): void {
    if (this.stopped) return;
    this.setElected(false, why);
    this.log.warn('leaving the ZooKeeper session and joining the election again', { why });
    this.session?.close();
    this.session = undefined;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.newSession(), RETRY_MS);
  }

  private newSession(): void {
    if (this.stopped) return;
    const gen = ++this.generation;
    this.myCandidate = '';
    this.winning = false;
    this.contending = false;
    this.contendAgain = false;
    const session = new ZkSession({
      connect: this.s.connect,
      sessionTimeoutMs: this.s.sessionTimeoutMs,
      log: this.log,
      onState: (state) => {
        if (gen !== this.generation) return;
        this.log.info('ZooKeeper session', { state });
        if (state === 'connecting' && this.elected) this.log.warn('ZooKeeper connection lost: mutations paused', { leaseMs: this.leaseMs });
        if (state === 'expired') this.restart('ZooKeeper session expired');
      },
    });
    this.session = session;
    void this.join(gen, session);
  }

  private alive(gen: number): boolean {
    return !this.stopped && gen === this.generation;
  }

  private retryLater(gen: number, step: () => Promise<void>, error: unknown, what: string): void {
    if (!this.alive(gen)) return;
    this.log.warn(`ZooKeeper ${what} failed; retrying`, { error: (error as Error).message });
    // One timer per failed step (they are few and die with the session's generation).
    setTimeout(() => {
      if (this.alive(gen)) void step();
    }, RETRY_MS).unref();
  }

  private async join(gen: number, session: ZkSession): Promise<void> {
    const root = this.s.root;
    try {
      await session.waitConnected(Math.max(this.s.sessionTimeoutMs, 5000));
      if (!this.alive(gen)) return;
      await session.mkdirp(`${root}/election`);
      await session.mkdirp(`${root}/trackers`);
      await session.mkdirp(`${root}/nodes`);
      await session.mkdirp(`${root}/streamers`);
      try {
        await session.create(`${root}/epoch`, '0', 0);
      } catch (error) {
        if (zkCode(error) !== ZK.NODEEXISTS) throw error;
      }
      await this.register(session);
      this.watchLeader(gen, session);
      this.watchTrackers(gen, session);
      this.watchPresence(gen, session, 'nodes');
      this.watchPresence(gen, session, 'streamers');
      const me = JSON.stringify({ id: this.trackerId, url: this.url });
      this.myCandidate = await session.create(`${root}/election/c_`, me, ZK.EPHEMERAL | ZK.SEQUENCE);
      if (!this.alive(gen)) return;
      this.log.info('joined the election', { candidate: this.myCandidate });
      await this.contend(gen, session);
    } catch (error) {
      if (!this.alive(gen)) return;
      // Nothing of this session is trusted after a failed join: start over.
      this.log.warn('joining the election failed; starting over', { error: (error as Error).message });
      this.restart('join failed');
    }
  }

  /** Our online marker; a stale one of a previous session of ours is replaced. */
  private async register(session: ZkSession): Promise<void> {
    const path = `${this.s.root}/trackers/${this.trackerId}`;
    const data = JSON.stringify({ id: this.trackerId, url: this.url });
    try {
      await session.create(path, data, ZK.EPHEMERAL);
    } catch (error) {
      if (zkCode(error) !== ZK.NODEEXISTS) throw error;
      this.log.warn('a tracker znode with our id exists (an earlier session of ours, or a duplicate id); replacing it', { path });
      await session.delete(path).catch(() => {});
      await session.create(path, data, ZK.EPHEMERAL);
    }
  }

  /**
   * One election step at a time: watches, retries and the join may all ask for one; a request
   * during a step runs one more step after it (two steps at once could both try to win).
   */
  private async contend(gen: number, session: ZkSession): Promise<void> {
    if (this.contending) {
      this.contendAgain = true;
      return;
    }
    this.contending = true;
    try {
      do {
        this.contendAgain = false;
        await this.contendOnce(gen, session);
      } while (this.contendAgain && this.alive(gen));
    } finally {
      if (gen === this.generation) this.contending = false;
    }
  }

  private async contendOnce(gen: number, session: ZkSession): Promise<void> {
    if (!this.alive(gen) || this.winning || this.elected) return;
    try {
      const names = (await session.children(`${this.s.root}/election`)).filter((n) => n.startsWith('c_')).sort((a, b) => sequenceOf(a) - sequenceOf(b));
      if (!this.alive(gen)) return;
      const mine = basename(this.myCandidate);
      const at = names.indexOf(mine);
      if (at < 0) {
        this.restart('our candidate znode is gone');
        return;
      }
      if (at === 0) {
        await this.win(gen, session);
        return;
      }
      // Watch only the one just ahead of us: when it goes, we look again.
      const predecessor = `${this.s.root}/election/${names[at - 1]!}`;
      const exists = await session.exists(predecessor, () => void this.contend(gen, session));
      if (!exists) this.contendAgain = true; // gone between the two reads: look again
      else this.log.info('standing by', { waitingFor: basename(predecessor), candidate: mine });
    } catch (error) {
      this.retryLater(gen, () => this.contend(gen, session), error, 'election step');
    }
  }

  private async win(gen: number, session: ZkSession): Promise<void> {
    if (this.winning || this.elected) return;
    this.winning = true;
    try {
      const path = `${this.s.root}/epoch`;
      let epoch = 0;
      for (let attempt = 1; ; attempt++) {
        const current = await session.get(path);
        if (!current) throw new Error('the epoch znode is missing');
        const was = Number(current.data) || 0;
        epoch = Math.max(was, this.lastLeader?.epoch ?? 0, this.currentEpoch) + 1;
        try {
          await session.set(path, String(epoch), current.version);
          break;
        } catch (error) {
          if (zkCode(error) !== ZK.BADVERSION || attempt >= EPOCH_CAS_ATTEMPTS) throw error;
          this.log.warn('the epoch counter moved under us; reading it again', { attempt });
        }
      }
      if (!this.alive(gen)) return;
      this.currentEpoch = epoch;
      const crumb: LeaderInfo = { id: this.trackerId, url: this.url, epoch, at: new Date().toISOString() };
      try {
        await session.set(`${this.s.root}/leader`, JSON.stringify(crumb), -1);
      } catch (error) {
        if (zkCode(error) !== ZK.NONODE) throw error;
        await session.create(`${this.s.root}/leader`, JSON.stringify(crumb), 0);
      }
      if (!this.alive(gen)) return;
      this.lastLeader = crumb;
      this.wins++;
      this.setElected(true, 'lowest candidate; epoch advanced');
    } catch (error) {
      this.winning = false;
      this.retryLater(gen, () => this.contend(gen, session), error, 'taking the leadership');
    }
  }

  private watchLeader(gen: number, session: ZkSession): void {
    const again = (): void => {
      if (this.alive(gen)) this.watchLeader(gen, session);
    };
    session.get(`${this.s.root}/leader`, again).then(
      (v) => {
        const info = v ? parseLeader(v.data) : undefined;
        if (info && this.alive(gen) && (!this.lastLeader || info.epoch >= this.lastLeader.epoch)) {
          if (info.epoch !== this.lastLeader?.epoch) this.log.info('leader', { id: info.id, url: info.url, epoch: info.epoch });
          this.lastLeader = info;
        }
      },
      (error: unknown) => this.retryLater(gen, async () => this.watchLeader(gen, session), error, 'leader watch'),
    );
  }

  private watchPresence(gen: number, session: ZkSession, kind: PresenceKind): void {
    const again = (): void => {
      if (this.alive(gen)) this.watchPresence(gen, session, kind);
    };
    session.children(`${this.s.root}/${kind}`, again).then(
      (names) => {
        if (!this.alive(gen)) return;
        const now = new Set(names);
        const gone = this.online[kind].filter((id) => !now.has(id));
        this.online[kind] = names.sort();
        if (gone.length > 0) {
          this.log.warn(`${kind} left ZooKeeper`, { ids: gone });
          for (const l of this.presenceListeners) l(kind, gone);
        }
      },
      (error: unknown) => this.retryLater(gen, async () => this.watchPresence(gen, session, kind), error, `${kind} watch`),
    );
  }

  private watchTrackers(gen: number, session: ZkSession): void {
    const again = (): void => {
      if (this.alive(gen)) this.watchTrackers(gen, session);
    };
    session.children(`${this.s.root}/trackers`, again).then(
      (names) => {
        if (this.alive(gen)) this.trackersOnline = names.sort();
      },
      (error: unknown) => this.retryLater(gen, async () => this.watchTrackers(gen, session), error, 'tracker watch'),
    );
  }
}
