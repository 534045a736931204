// Who may mutate the cluster, and under which epoch (DESIGN.md HA: every mutation carries the
// leader's epoch; storage nodes refuse a lower one). A standalone tracker is always the leader of
// epoch 1. The ZooKeeper election (later) provides another implementation of this one interface,
// so nothing else in the tracker changes when HA arrives.
export interface Leadership {
  readonly epoch: number;
  readonly leader: boolean;
  close?(): Promise<void>;
}

export function standaloneLeadership(): Leadership {
  return { epoch: 1, leader: true };
}
