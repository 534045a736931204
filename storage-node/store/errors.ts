// Operating errors of the blob store, by cause. The HTTP layer maps each code to a status; the
// store itself knows nothing about HTTP.
export type StoreErrorCode =
  | 'not-found'
  | 'too-large'
  | 'hash-mismatch'
  | 'no-space'
  | 'corrupt'
  | 'disk-failed'
  | 'idle-timeout'
  /** The body stream failed (client went away, source node dropped the connection). */
  | 'body-failed'
  | 'busy'
  | 'stale-epoch'
  | 'copy-failed';

export class StoreError extends Error {
  constructor(readonly code: StoreErrorCode, message: string) {
    super(message);
  }
}

export function isStoreError(error: unknown, code?: StoreErrorCode): error is StoreError {
  return error instanceof StoreError && (code === undefined || error.code === code);
}
