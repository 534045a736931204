// Changes to the inventory, numbered from 1 per boot, for the trackers. The log keeps no history
// itself: each tracker reporter buffers what it has not delivered yet (bounded, see report/).
import type { BlobKind } from '../../common/contracts.js';

export interface Change {
  seq: number;
  op: 'add' | 'remove';
  disk: string;
  blob: string;
  size: number;
  kind: BlobKind;
}

export interface ChangeListener {
  onChange(change: Change): void;
  /** Many blobs changed at once (a disk was masked): send a full report instead of changes. */
  onReset(seq: number): void;
}

export class ChangeLog {
  private seqNow = 0;
  private readonly listeners = new Set<ChangeListener>();

  /** The sequence number of the last change (0 before the first). */
  get seq(): number {
    return this.seqNow;
  }

  record(op: Change['op'], disk: string, blob: string, size: number, kind: BlobKind): Change {
    this.seqNow += 1;
    const change: Change = { seq: this.seqNow, op, disk, blob, size, kind };
    for (const l of this.listeners) l.onChange(change);
    return change;
  }

  /**
   * Skips a sequence number on purpose: a tracker comparing its last applied change with the
   * heartbeat's changeSeq sees a gap and asks for a full report, and our reporters send one anyway.
   */
  reset(): void {
    this.seqNow += 1;
    for (const l of this.listeners) l.onReset(this.seqNow);
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
