// Replica copies for the tracker's repair: pull a blob from another node and store it through
// the same verified write path as an upload (so a bad source cannot plant wrong bytes here).
// Sources are tried in order; the number of copies at once is bounded (more answer 503).
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import type { FetchCommand } from '../../common/contracts.js';
import { signedBlobHeaders } from '../../common/http.js';
import type { Logger } from '../../common/log.js';
import type { BlobStore, WriteResult } from '../store/blob-store.js';
import { Semaphore } from '../store/concurrency.js';
import { StoreError } from '../store/errors.js';

const GIB = 1024 ** 3;

export interface CopyOptions {
  store: BlobStore;
  secret: string;
  maxConcurrentCopies: number;
  copyTimeoutMsPerGiB: number;
  log: Logger;
  /** This node's own URL (a source equal to it is skipped). */
  selfUrl: () => string;
  onResult: (result: 'copied' | 'existed' | 'failed' | 'busy') => void;
}

export interface CopyResult extends WriteResult {
  source?: string;
}

/** Whole-copy deadline: copyTimeoutMsPerGiB per GiB, plus one unit (config/schema.ts). */
export function copyDeadlineMs(sizeBytes: number, perGiBMs: number): number {
  return Math.ceil(perGiBMs * (1 + sizeBytes / GIB));
}

export class ReplicaCopier {
  private readonly slots: Semaphore;
  /** Copies running now, by blob: a tracker retrying after its own timeout joins the running one. */
  private readonly running = new Map<string, Promise<CopyResult>>();

  constructor(private readonly options: CopyOptions) {
    this.slots = new Semaphore(options.maxConcurrentCopies);
  }

  copy(id: string, command: FetchCommand): Promise<CopyResult> {
    const joined = this.running.get(id);
    if (joined) return joined;
    const work = this.copyOnce(id, command).finally(() => this.running.delete(id));
    this.running.set(id, work);
    return work;
  }

  private async copyOnce(id: string, command: FetchCommand): Promise<CopyResult> {
    const { store, onResult } = this.options;
    const held = store.get(id);
    if (held) {
      onResult('existed');
      return { id, sizeBytes: held.sizeBytes, diskId: held.diskId, existed: true };
    }
    if (!this.slots.tryAcquire()) {
      onResult('busy');
      throw new StoreError('busy', `already running ${this.slots.limit} replica copies; retry later`);
    }
    try {
      const deadlineMs = copyDeadlineMs(command.size, this.options.copyTimeoutMsPerGiB);
      const reasons: string[] = [];
      for (const source of command.sources) {
        if (source === this.options.selfUrl()) {
          reasons.push(`${source}: is this node`);
          continue;
        }
        try {
          const result = await this.copyFrom(source, id, command, deadlineMs);
          onResult(result.existed ? 'existed' : 'copied');
          return { ...result, source };
        } catch (error) {
          // Our own disks cannot take it: another source will not help.
          if (error instanceof StoreError && (error.code === 'no-space' || error.code === 'too-large')) throw error;
          reasons.push(`${source}: ${(error as Error).message}`);
          this.options.log.warn('replica copy from a source failed', { blob: id, source, error: (error as Error).message });
        }
      }
      onResult('failed');
      throw new StoreError('copy-failed', `no source could provide blob ${id}: ${reasons.join('; ')}`.slice(0, 2000));
    } finally {
      this.slots.release();
    }
  }

  private async copyFrom(source: string, id: string, command: FetchCommand, deadlineMs: number): Promise<WriteResult> {
    const url = new URL(`/internal/v1/blobs/${id}`, source);
    let response: Response;
    try {
      response = await fetch(url, { headers: signedBlobHeaders(this.options.secret, 'GET', url), signal: AbortSignal.timeout(deadlineMs) });
    } catch (error) {
      const e = error as Error;
      throw new Error(e.name === 'TimeoutError' ? `no answer within ${deadlineMs} ms` : ((e.cause as Error | undefined)?.message ?? e.message));
    }
    if (response.status !== 200 || !response.body) {
      const text = await response.text().catch(() => '');
      throw new Error(`answered ${response.status} ${text.slice(0, 200)}`.trim());
    }
    const length = Number(response.headers.get('content-length') ?? Number.NaN);
    const body = Readable.fromWeb(response.body as unknown as NodeReadableStream<Uint8Array>);
    // Errors reach the write path through its iterator; this keeps one that fires while nobody
    // iterates (after a refusal, say) from being an uncaught 'error' event.
    body.on('error', () => {});
    try {
      // The id decides what is right; the size only picks a disk with room and bounds the read.
      return await this.options.store.write({
        id,
        kind: command.kind,
        body,
        declaredSizeBytes: Number.isSafeInteger(length) ? length : command.size,
        diskId: command.disk,
      });
    } finally {
      body.destroy();
    }
  }
}
