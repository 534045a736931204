// Fencing (DESIGN.md "High availability"): every mutation from a tracker carries the leader's
// epoch, and this node refuses one lower than the highest it has seen, so a paused old leader
// cannot delete or place blobs after a newer leader took over. Heartbeat answers teach the
// highest epoch too. Kept in memory: after a restart the first heartbeat teaches it again.
import { StoreError } from './store/errors.js';

export class EpochFence {
  private highest = 0;

  get highestSeen(): number {
    return this.highest;
  }

  observe(epoch: number): void {
    if (epoch > this.highest) this.highest = epoch;
  }

  /** Refuses a stale epoch (StoreError 'stale-epoch'); an absent one is allowed (plain writes). */
  admit(epoch: number | undefined): void {
    if (epoch === undefined) return;
    if (epoch < this.highest) throw new StoreError('stale-epoch', `stale epoch ${epoch}: this node has seen epoch ${this.highest}`);
    this.highest = epoch;
  }
}
