// Splitting a full inventory into batches. Pure. Entries are grouped by disk inside a batch, as
// the inventoryBatch message wants; a batch holds at most `maxBlobs` entries across its disks.
import type { InventoryEntry as WireEntry } from '../../common/contracts.js';
import type { InventoryEntry } from '../store/inventory.js';

export type BatchDisks = Array<{ id: string; blobs: WireEntry[] }>;

export function* inventoryBatches(entries: Iterable<[string, InventoryEntry]>, maxBlobs: number): Generator<BatchDisks> {
  let byDisk = new Map<string, WireEntry[]>();
  let count = 0;
  for (const [id, e] of entries) {
    let list = byDisk.get(e.diskId);
    if (!list) {
      list = [];
      byDisk.set(e.diskId, list);
    }
    list.push([id, e.sizeBytes, e.kind]);
    count += 1;
    if (count >= maxBlobs) {
      yield [...byDisk].map(([diskId, blobs]) => ({ id: diskId, blobs }));
      byDisk = new Map();
      count = 0;
    }
  }
  if (count > 0) yield [...byDisk].map(([diskId, blobs]) => ({ id: diskId, blobs }));
}
