// Read buffers reused across range reads. A 22 MB segment read in 1 MiB pieces allocated 22 new
// buffers, and at hundreds of MB/s the garbage collector spent 12 % of the node's CPU on them
// (measured with KTV_CPU_PROF_DIR under `npm run bench`'s stream load). A piece goes back to the
// pool only once the socket has taken its bytes (res.write's callback), so a buffer is never
// refilled while still being sent. Bounded: at most maxFree buffers wait here.
export class BufferPool {
  private readonly free: ArrayBuffer[] = [];

  constructor(
    readonly bufferBytes: number,
    readonly maxFree: number,
  ) {}

  /** A buffer of `bytes` (≤ bufferBytes: from the pool; larger: a plain allocation). */
  take(bytes: number): Buffer {
    if (bytes > this.bufferBytes) return Buffer.allocUnsafe(bytes);
    const ab = this.free.pop() ?? Buffer.allocUnsafeSlow(this.bufferBytes).buffer;
    return Buffer.from(ab, 0, bytes);
  }

  /** Returns the memory behind `piece` (any view of a pooled buffer) once nothing reads it. */
  give(piece: Buffer): void {
    const ab = piece.buffer;
    if (!(ab instanceof ArrayBuffer) || ab.byteLength !== this.bufferBytes || this.free.length >= this.maxFree) return;
    this.free.push(ab);
  }

  get size(): number {
    return this.free.length;
  }
}
