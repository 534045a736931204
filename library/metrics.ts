// What an operator watches on the library: uploads by outcome, bytes in, how long a song takes,
// and whether the packaging queue is backing up.
import { Registry, type Counter, type Histogram } from '../common/metrics.js';
import type { JobSlots } from './jobs.js';

export interface LibraryMetrics {
  registry: Registry;
  /** By HTTP status of the answer; "aborted" when the client went away first. */
  uploads: Counter;
  receivedBytes: Counter;
  /** Wall time of one ingest (slot acquired → result), success or failure. */
  ingestSeconds: Histogram;
}

export function createLibraryMetrics(slots: JobSlots): LibraryMetrics {
  const registry = new Registry();
  const metrics: LibraryMetrics = {
    registry,
    uploads: registry.counter('library_uploads_total', 'Song uploads by answer status'),
    receivedBytes: registry.counter('library_upload_received_bytes_total', 'Request body bytes received on POST /api/v1/songs'),
    // A 4-minute 1080p song remuxes in seconds and transcodes in minutes on a small box.
    ingestSeconds: registry.histogram('library_ingest_seconds', 'Time to ingest one song', [1, 2, 5, 10, 30, 60, 120, 300, 600, 1200]),
  };
  registry.gauge('library_queue_length', 'Uploads admitted but not packaging yet (receiving or waiting)', () => [[undefined, slots.queuedCount]]);
  registry.gauge('library_jobs_running', 'Songs being packaged now', () => [[undefined, slots.runningCount]]);
  return metrics;
}
