import { randomBytes } from 'node:crypto';

/** A short random id safe for URLs, file names and metric labels (matches contracts ID_RE). */
export function randomId(prefix: string): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}
