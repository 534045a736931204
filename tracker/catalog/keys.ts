// Search keys of a song and of a query. Pure. All keys are folded (lowercase, no diacritics, no
// tone marks, half-width) so matching is a plain byte comparison in SQLite, which can then use
// its indexes and its trigram index instead of case-folding 100,000 rows per query.
import type { SongManifest } from '../../common/contracts.js';
import { foldText, toPinyin } from '../../common/pinyin.js';

export interface SongKeys {
  /** Display initials of the title (CONTRACT.md `initials`), e.g. 'QLX'. */
  initials: string;
  titleKey: string;
  artistKey: string;
  /** Pinyin without spaces: 'qilixiang' (spaces are optional when typing, so none are stored). */
  titlePy: string;
  artistPy: string;
  /** Initials, lowercase: 'qlx'. */
  titleIni: string;
  artistIni: string;
  languageKey: string;
  /** All match keys joined by U+0001: one covering-index scan for queries too short for trigrams. */
  allKeys: string;
}

/** Never inside a key (normalizeKey turns control characters into spaces). */
const KEY_SEPARATOR = '\u0001';

/** Folded, whitespace collapsed: for title/artist text as typed. */
export function normalizeKey(text: string): string {
  return foldText(text).replace(/[\s\p{Cc}]+/gu, ' ').trim();
}

/** Folded, letters and digits only: for pinyin and initials, where spaces and punctuation are noise. */
export function compactKey(text: string): string {
  return foldText(text).replace(/[^\p{L}\p{N}]+/gu, '');
}

export function songKeys(m: Pick<SongManifest, 'title' | 'artist' | 'language' | 'pinyin' | 'initials'>): SongKeys {
  // The manifest's own pinyin (set by the library, maybe hand-corrected for a polyphone) wins.
  const computed = m.pinyin && m.initials ? undefined : toPinyin(m.title);
  const titlePinyin = m.pinyin || computed!.pinyin;
  const titleInitials = m.initials || computed!.initials;
  const artist = toPinyin(m.artist);
  const keys = {
    titleKey: normalizeKey(m.title),
    artistKey: normalizeKey(m.artist),
    titlePy: compactKey(titlePinyin),
    artistPy: compactKey(artist.pinyin),
    titleIni: compactKey(titleInitials),
    artistIni: compactKey(artist.initials),
  };
  return {
    ...keys,
    initials: titleInitials.toUpperCase(),
    languageKey: normalizeKey(m.language),
    allKeys: Object.values(keys).join(KEY_SEPARATOR),
  };
}

export interface QueryKeys {
  /** Matched against title and artist keys. */
  text: string;
  /** Matched against pinyin and initials keys. */
  compact: string;
}

export function queryKeys(q: string): QueryKeys {
  return { text: normalizeKey(q), compact: compactKey(q) };
}

/** An FTS5 phrase: the text in double quotes, quotes doubled (no operator in `q` is ever parsed). */
export function ftsPhrase(text: string): string {
  return `"${text.replace(/"/g, '""')}"`;
}

/** Upper bound for a prefix range scan: every string starting with `prefix` sorts below it. */
export function prefixUpperBound(prefix: string): string {
  return prefix + '\u{10FFFF}';
}
