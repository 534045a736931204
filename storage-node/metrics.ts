// The node's Prometheus metrics (GET /metrics). Disk gauges are computed at scrape time from the
// store, so they are never stale and cost nothing between scrapes.
import type { DiskStatus } from '../common/contracts.js';
import { Registry } from '../common/metrics.js';
import type { StoreHooks } from './store/blob-store.js';

export interface NodeMetrics {
  registry: Registry;
  hooks: StoreHooks;
  request(route: string, method: string, status: number | 'aborted'): void;
  copy(result: string): void;
  /** A tracker command refused for carrying an epoch lower than one already seen (fencing). */
  staleEpoch(command: 'write' | 'copy' | 'delete'): void;
  /** Replicas removed by a tracker's delete command. */
  deleted(replicas: number): void;
  /** Where the disk gauges read from (set once the store is open). */
  setDiskSource(source: () => DiskStatus[]): void;
}

export function createNodeMetrics(): NodeMetrics {
  const registry = new Registry();
  let disks: () => DiskStatus[] = () => [];
  const readBytes = registry.counter('storage_read_bytes_total', 'Blob bytes read from disk');
  const writtenBytes = registry.counter('storage_written_bytes_total', 'Blob bytes written to disk');
  const requests = registry.counter('storage_http_requests_total', 'HTTP requests by route, method and status');
  const corruptReads = registry.counter('storage_corrupt_reads_total', 'Reads that found a corrupt replica (quarantined)');
  const hashMismatches = registry.counter('storage_hash_mismatches_total', 'Writes refused because the bytes did not hash to their id');
  const copies = registry.counter('storage_copies_total', 'Replica copies run for the tracker, by result');
  const staleEpochs = registry.counter('storage_stale_epoch_refused_total', 'Tracker commands refused for a stale leader epoch (fencing), by command');
  const deletes = registry.counter('storage_deleted_replicas_total', 'Replicas removed by tracker delete commands');
  const probes = registry.counter('storage_disk_probes_total', 'Disk health probes by result (ok, slow, failed, hung)');
  const faults = registry.counter('storage_disk_faults_total', 'Disk faults by kind (timeout, slow-op, io-error, gone, probe-failed, slow-probe, probe-hung, suspect-report)');
  const scrubBytes = registry.counter('storage_scrub_bytes_total', 'Bytes re-hashed by the scrubber');
  const scrubCorrupt = registry.counter('storage_scrub_corrupt_total', 'Corrupt replicas found by the scrubber or a returning disk\'s verification (quarantined)');
  const recoveries = registry.counter('storage_disk_recoveries_total', 'Masked disks verified and trusted again, or whose verification was cut short, by result');
  registry.gauge('storage_disk_probe_normal_ms', 'Normal probe duration per disk (median of recent good probes)', () => disks().map((d) => [{ disk: d.id }, d.probe?.normalMs ?? 0]));
  registry.gauge('storage_disk_recent_faults', 'Faults inside the fault window per disk', () => disks().map((d) => [{ disk: d.id }, d.probe?.recentFaults ?? 0]));
  registry.gauge('storage_disk_verifying_checked', 'Blobs verified so far on a returning disk', () => disks().filter((d) => d.verifying).map((d) => [{ disk: d.id }, d.verifying!.checked]));
  registry.gauge('storage_disk_verifying_total', 'Blobs to verify on a returning disk', () => disks().filter((d) => d.verifying).map((d) => [{ disk: d.id }, d.verifying!.total]));
  registry.gauge('storage_disk_blobs', 'Blobs per disk', () => disks().map((d) => [{ disk: d.id }, d.blobs]));
  registry.gauge('storage_disk_used_bytes', 'Blob bytes per disk', () => disks().map((d) => [{ disk: d.id }, d.usedBytes]));
  registry.gauge('storage_disk_free_bytes', 'Free bytes per disk', () => disks().map((d) => [{ disk: d.id }, d.freeBytes]));
  registry.gauge('storage_disk_state', 'Disk state (1 for the current one)', () => disks().map((d) => [{ disk: d.id, state: d.state }, 1]));
  return {
    registry,
    hooks: {
      bytesRead: (disk, bytes) => readBytes.inc({ disk }, bytes),
      bytesWritten: (disk, bytes) => writtenBytes.inc({ disk }, bytes),
      corruptRead: (disk) => corruptReads.inc({ disk }),
      hashMismatch: () => hashMismatches.inc(),
      probe: (disk, result) => probes.inc({ disk, result }),
      fault: (disk, kind) => faults.inc({ disk, kind }),
      scrubBytes: (disk, bytes) => scrubBytes.inc({ disk }, bytes),
      scrubCorrupt: (disk) => scrubCorrupt.inc({ disk }),
      recovered: (disk, result) => recoveries.inc({ disk, result }),
    },
    request: (route, method, status) => requests.inc({ route, method, status: String(status) }),
    copy: (result) => copies.inc({ result }),
    staleEpoch: (command) => staleEpochs.inc({ command }),
    deleted: (replicas) => deletes.inc(undefined, replicas),
    setDiskSource: (source) => {
      disks = source;
    },
  };
}
