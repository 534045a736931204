// Writes one file as a blob to the cluster: hash it, ask the tracker where, stream it to every
// target at once, and return only when `replicas` nodes have answered 201/200 (each one has
// verified the SHA-256 and fsynced before answering). A target that fails is replaced by a new
// placement that leaves out the nodes already tried, a bounded number of times.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import type { BlobKind, PlacementResponse, PlacementTarget } from '../../common/contracts.js';
import { HEADER_EPOCH, HEADER_KIND } from '../../common/contracts.js';
import { signedBlobHeaders } from '../../common/http.js';
import type { TrackerClient } from '../../common/tracker-client.js';

export interface UploadDeps {
  tracker: TrackerClient;
  secret: string;
  /** Copies that must be durable before the blob counts as stored. */
  replicas: number;
  /** No byte moving for this long aborts a PUT. */
  idleTimeoutMs: number;
  /** Placement rounds before giving up (each replaces the targets that failed). */
  maxPlacementRounds: number;
  /** Keep-alive connections to storage nodes, shared by every upload of this process. */
  agent: http.Agent;
}

export interface StoredBlob {
  id: string;
  sizeBytes: number;
  kind: BlobKind;
  nodes: string[];
}

export class UploadError extends Error {}

export async function hashFile(file: string): Promise<{ id: string; sizeBytes: number }> {
  const hash = createHash('sha256');
  let sizeBytes = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
    hash.update(chunk as Buffer);
    sizeBytes += (chunk as Buffer).length;
  }
  return { id: hash.digest('hex'), sizeBytes };
}

/** PUTs the file to one target; resolves on 201/200, rejects with the node's reason otherwise. */
function putTo(target: PlacementTarget, id: string, file: string | Buffer, sizeBytes: number, kind: BlobKind, epoch: number, deps: UploadDeps): Promise<void> {
  return new Promise((resolve, reject) => {
    const url = new URL(`/internal/v1/blobs/${id}?disk=${encodeURIComponent(target.diskId)}`, target.url);
    const req = http.request(url, {
      method: 'PUT',
      agent: deps.agent,
      headers: {
        ...signedBlobHeaders(deps.secret, 'PUT', url),
        [HEADER_KIND]: kind,
        [HEADER_EPOCH]: String(epoch),
        'content-type': 'application/octet-stream',
        'content-length': String(sizeBytes),
      },
    });
    req.setTimeout(deps.idleTimeoutMs, () => req.destroy(new Error(`no progress for ${deps.idleTimeoutMs} ms`)));
    req.on('error', (error) => reject(new UploadError(`${target.nodeId}: ${error.message}`)));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.length < 64 && chunks.push(c));
      res.on('end', () => {
        if (res.statusCode === 201 || res.statusCode === 200) return resolve();
        let why = Buffer.concat(chunks).toString('utf8').slice(0, 300);
        try {
          why = (JSON.parse(why) as { error?: string }).error ?? why;
        } catch {
          /* keep the text */
        }
        reject(new UploadError(`${target.nodeId}: ${res.statusCode} ${why}`));
      });
    });
    if (Buffer.isBuffer(file)) {
      req.end(file);
    } else {
      const source = createReadStream(file, { highWaterMark: 1024 * 1024 });
      source.on('error', (error) => req.destroy(error));
      source.pipe(req);
    }
  });
}

/** Stores a file (or a small buffer such as a manifest) on `replicas` distinct nodes. */
export async function storeBlob(source: string | Buffer, kind: BlobKind, deps: UploadDeps): Promise<StoredBlob> {
  const { id, sizeBytes } = Buffer.isBuffer(source)
    ? { id: createHash('sha256').update(source).digest('hex'), sizeBytes: source.length }
    : await hashFile(source);
  if (!Buffer.isBuffer(source)) {
    // The file must not change under us between hashing and sending (the node would refuse it).
    const info = await stat(source);
    if (info.size !== sizeBytes) throw new UploadError(`${source} changed while it was being hashed`);
  }
  const stored = new Set<string>();
  const tried = new Set<string>();
  const failures: string[] = [];
  for (let round = 0; round < deps.maxPlacementRounds && stored.size < deps.replicas; round++) {
    const placement = await deps.tracker.call<PlacementResponse>('/internal/v1/placement', {
      body: { size: sizeBytes, excludeNodes: [...new Set([...stored, ...tried])] },
    });
    const targets = placement.targets.filter((t) => !stored.has(t.nodeId)).slice(0, deps.replicas - stored.size);
    if (targets.length === 0) break;
    const results = await Promise.allSettled(targets.map((t) => putTo(t, id, source, sizeBytes, kind, placement.epoch, deps)));
    results.forEach((r, i) => {
      const nodeId = targets[i]!.nodeId;
      tried.add(nodeId);
      if (r.status === 'fulfilled') stored.add(nodeId);
      else failures.push((r.reason as Error).message);
    });
  }
  if (stored.size < deps.replicas) {
    throw new UploadError(`blob ${id.slice(0, 12)}… stored on ${stored.size} of ${deps.replicas} nodes: ${failures.join('; ') || 'not enough healthy nodes'}`);
  }
  return { id, sizeBytes, kind, nodes: [...stored] };
}
