// Who may mutate the cluster, and under which epoch (DESIGN.md HA: every mutation carries the
// leader's epoch; storage nodes refuse a lower one). A standalone tracker is always the leader of
// epoch 1. The ZooKeeper election (ha/election.ts) is the other implementation of this interface.
export interface Leadership {
  readonly epoch: number;
  /** Read before every mutation is sent (it may turn false at any moment in HA mode). */
  readonly leader: boolean;
  /** Where a standby forwards writes (HA); undefined when unknown or when we lead. */
  leaderUrl?(): string | undefined;
  /** Extra facts for the cluster view and /health (HA). */
  view?(): object;
  close?(): Promise<void>;
}

/** Thrown by a fenced transport when this tracker stopped leading between decision and send. */
export class NotLeaderError extends Error {}

/**
 * Wraps a mutation transport so that it checks leadership right before each send: a decision
 * taken while leading must not go out after the leadership was lost (a round may yield).
 */
export function fenced<A extends unknown[], R>(leadership: Leadership, send: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return (...args: A) => (leadership.leader ? send(...args) : Promise.reject(new NotLeaderError('not the leader any more: mutation not sent')));
}

export function standaloneLeadership(): Leadership {
  return { epoch: 1, leader: true };
}
