// Pure rules of the node → tracker report protocol (full inventory + numbered changes).
// The tracker's view of a node is exact only if it applied the node's full inventory at some
// change sequence S and then every change S+1, S+2, … in order. Anything else: ask for a report.

export type ChangeDecision =
  | { action: 'apply'; /** leading entries already applied (overlapping resend) */ skip: number }
  | { action: 'duplicate' }
  | { action: 'gap' };

/** Changes numbered fromSeq … fromSeq+count-1 against the last applied sequence. */
export function decideChanges(appliedSeq: number, fromSeq: number, count: number): ChangeDecision {
  const lastSeq = fromSeq + count - 1;
  if (lastSeq <= appliedSeq) return { action: 'duplicate' };
  if (fromSeq > appliedSeq + 1) return { action: 'gap' };
  return { action: 'apply', skip: appliedSeq + 1 - fromSeq };
}

export interface SyncView {
  /** The inventory + changes applied so far, or null if the tracker has no complete inventory. */
  applied: { bootId: string; changeSeq: number } | null;
  /** A gap or a dropped report was seen since. */
  needFull: boolean;
  /** The change sequence the previous heartbeat (same boot) claimed, or -1. */
  prevHeartbeatSeq: number;
  /** A full report for this boot is arriving right now. */
  reportInProgress: boolean;
}

/**
 * Whether a heartbeat is answered with needFullReport. A change report and a heartbeat can
 * cross on the wire, so a heartbeat claiming a sequence ahead of what is applied is tolerated
 * once; if the changes the previous heartbeat claimed still have not arrived, they were lost.
 * While a report for this boot is arriving the answer is false, so a node that restarts its
 * report on every `true` cannot be kept from ever finishing a large one.
 */
export function heartbeatNeedsFullReport(sync: SyncView, bootId: string, changeSeq: number): boolean {
  if (sync.reportInProgress) return false;
  if (!sync.applied || sync.applied.bootId !== bootId || sync.needFull) return true;
  const applied = sync.applied.changeSeq;
  if (changeSeq < applied) return true; // a sequence never goes back within one boot
  return changeSeq > applied && sync.prevHeartbeatSeq > applied;
}
