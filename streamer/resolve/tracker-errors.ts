// How tracker failures look to a room: a 4xx from the tracker is the answer (passed on without the
// tracker's address); anything else means no tracker could answer (503).
import { HttpError, RpcError } from '../../common/http.js';

/** The tracker's own error text from an RpcError message (`GET url: 400 text`). */
export function trackerMessage(error: RpcError): string {
  const m = /: \d{3} (.*)$/s.exec(error.message);
  return (m ? m[1]! : 'tracker refused the request').slice(0, 300);
}

export function isTrackerAnswer(error: unknown, status?: number): error is RpcError {
  return error instanceof RpcError && error.status >= 400 && error.status < 500 && (status === undefined || error.status === status);
}

export function unavailable(what: string): HttpError {
  return new HttpError(503, `${what}: no tracker answered and nothing is cached; try again shortly`);
}
