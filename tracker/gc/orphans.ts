// Which data blobs are orphans (DESIGN.md "Data": a failed upload leaves no manifest, and orphan
// blobs are collected after a grace). Pure: plain data in, a decision out; the scheduler feeds
// it from the index and the catalog and does the deleting.
//
// Reference rule (the simple safe one): a data blob is referenced when the WINNING version of a
// song that is not deleted names it as a rendition `blob` or `playlistBlob`. Older versions are
// never served (the catalog answers with the winner only), so a blob only they name is garbage,
// and so are the blobs of a tombstoned song. Both only after the grace below, which a room still
// playing the old version outlives.
//
// Deleting is the one step that cannot be undone, so every doubt answers "not an orphan":
// - a blob must be in the index for `graceMs` (first seen by THIS process: a tracker restart
//   restarts the clock, which only delays collection), because an upload writes its data blobs
//   minutes before its manifest;
// - and it must have been seen unreferenced for `graceMs` in a row, by passes that ran with all
//   preconditions met (a blocked pass forgets every clock);
// - and nothing is reported at all unless the preconditions hold (gcBlockedReason).
import type { BlobKind } from '../../common/contracts.js';

export interface GcNode {
  id: string;
  alive: boolean;
  /** A complete inventory of the node's current boot has been applied. */
  inventoryComplete: boolean;
  /** Disks the node cannot read: their blobs left the inventory, so we cannot see them. */
  maskedDisks: number;
}

export interface GcPreconditions {
  /** Only the leader mutates (DESIGN.md HA), and a delete is a mutation. */
  leader: boolean;
  /** Time since this tracker process started. */
  upForMs: number;
  nodeDeadAfterMs: number;
  /** Every node the tracker knows of. */
  nodes: readonly GcNode[];
  /** Manifest blobs the fetcher still has to read (queued or retrying). */
  manifestsPending: number;
}

/**
 * Why GC must not decide anything now, or undefined when it may. The index and the catalog are
 * only complete when every node that could hold a manifest has told us everything it holds and
 * every manifest it told us of has been read: otherwise an unseen manifest may reference a blob.
 */
export function gcBlockedReason(p: GcPreconditions): string | undefined {
  if (!p.leader) return 'this tracker is not the leader';
  if (p.upForMs < p.nodeDeadAfterMs) return 'waiting for nodes to check in after start';
  const dead = p.nodes.filter((n) => !n.alive);
  // A dead node may hold the only copy of a manifest we have not seen.
  if (dead.length > 0) return `node not alive: ${names(dead)}`;
  const incomplete = p.nodes.filter((n) => !n.inventoryComplete);
  if (incomplete.length > 0) return `inventory incomplete: ${names(incomplete)}`;
  const masked = p.nodes.filter((n) => n.maskedDisks > 0);
  if (masked.length > 0) return `masked disk on ${names(masked)} (its blobs are not in the index)`;
  if (p.manifestsPending > 0) return `${p.manifestsPending} manifest blob(s) not read yet`;
  return undefined;
}

function names(nodes: readonly GcNode[]): string {
  const shown = nodes.slice(0, 5).map((n) => n.id).join(', ');
  return nodes.length > 5 ? `${shown} and ${nodes.length - 5} more` : shown;
}

export interface GcBlob {
  id: string;
  kind: BlobKind;
  sizeBytes: number;
  /** When this tracker process first saw the blob in its index. */
  firstSeenMs: number;
}

export interface OrphanInput {
  preconditions: GcPreconditions;
  blobs: Iterable<GcBlob>;
  isReferenced(blobId: string): boolean;
  /** The manifest blob was parsed into the catalog or rejected as invalid (never to be read again). */
  isKnownManifest(blobId: string): boolean;
  /** Unreferenced data blobs from the previous pass → since when (the second grace clock). */
  unreferencedSinceMs: ReadonlyMap<string, number>;
  nowMs: number;
  graceMs: number;
  /** Orphans listed at most (the count goes on). */
  maxOrphans: number;
  /** Orphans already being deleted: counted, not listed again (so the list reaches the others). */
  isBeingDeleted?(blobId: string): boolean;
  /** Unreferenced blobs whose clock is kept at most (memory bound: the rest wait for a later pass). */
  maxTracked: number;
}

export interface OrphanDecision {
  /** Set when nothing may be decided: `orphans` is empty and every clock is dropped. */
  blocked?: string;
  /** Orphans, at most maxOrphans, in the order seen. */
  orphans: GcBlob[];
  orphanCount: number;
  /** Every unreferenced data blob seen (up to maxTracked) → since when: the next pass's input. */
  unreferencedSinceMs: Map<string, number>;
}

/** Decides over `blobs` (all of the index, or one chunk of it: decisions of chunks concatenate). */
export function findOrphans(input: OrphanInput): OrphanDecision {
  const blockedBefore = gcBlockedReason(input.preconditions);
  if (blockedBefore) return blocked(blockedBefore);
  const orphans: GcBlob[] = [];
  let orphanCount = 0;
  const since = new Map<string, number>();
  for (const b of input.blobs) {
    if (b.kind === 'manifest') {
      // Every manifest in the index must be in the catalog (or known bad) before any data blob
      // can be called unreferenced. Manifest blobs themselves are never collected.
      if (!input.isKnownManifest(b.id)) return blocked(`manifest ${b.id} not in the catalog yet`);
      continue;
    }
    if (input.isReferenced(b.id)) continue;
    if (since.size >= input.maxTracked) continue; // its clock (re)starts in a later pass: a delay only
    const sinceMs = input.unreferencedSinceMs.get(b.id) ?? input.nowMs;
    since.set(b.id, sinceMs);
    if (input.nowMs - b.firstSeenMs >= input.graceMs && input.nowMs - sinceMs >= input.graceMs) {
      orphanCount++;
      if (orphans.length < input.maxOrphans && !input.isBeingDeleted?.(b.id)) orphans.push(b);
    }
  }
  return { orphans, orphanCount, unreferencedSinceMs: since };
}

function blocked(reason: string): OrphanDecision {
  return { blocked: reason, orphans: [], orphanCount: 0, unreferencedSinceMs: new Map() };
}

/** What a manifest references. The stored JSON passed the schema on arrival; defaults may be absent. */
export function referencesOf(manifest: { renditions?: ReadonlyArray<{ blob: string; playlistBlob?: string }> }): string[] {
  const out: string[] = [];
  for (const r of manifest.renditions ?? []) {
    out.push(r.blob);
    if (r.playlistBlob) out.push(r.playlistBlob);
  }
  return out;
}

/**
 * Set of referenced blob ids, keyed by the first 52 bits of the id (a number, exact in a double).
 * Back of the envelope: 100,000 songs × 6 referenced blobs = 600,000 ids; as strings in a Set
 * that is ~100 bytes each (60 MB), as numbers ~40 (24 MB). Two ids sharing a 52-bit prefix
 * (chance ~0.2% for the whole set against a million blobs) only make an orphan look referenced:
 * it is kept, never the other way round.
 */
export class ReferenceSet {
  private readonly keys = new Set<number>();
  add(blobId: string): void {
    this.keys.add(prefixKey(blobId));
  }
  has(blobId: string): boolean {
    return this.keys.has(prefixKey(blobId));
  }
  get size(): number {
    return this.keys.size;
  }
}

function prefixKey(blobId: string): number {
  return parseInt(blobId.slice(0, 13), 16);
}
