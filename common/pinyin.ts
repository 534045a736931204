// Pinyin keys for song search (CONTRACT.md: q matches pinyin and pinyin initials). Shared by the
// tracker's catalog and the library's ingest, so a song is keyed the same way wherever computed.
// Rooms type on a remote or a phone: tones and spaces are never required, so keys carry neither.
import { pinyin } from 'pinyin-pro';

export interface PinyinKeys {
  /** Lowercase syllables without tones, space separated: '周杰伦' → 'zhou jie lun'. Latin words as themselves. */
  pinyin: string;
  /** One uppercase letter per syllable or Latin word: '周杰伦' → 'ZJL', 'Let It Be' → 'LIB'. */
  initials: string;
}

// Characters that join a Latin word rather than split it ("Don't" is one word, not "Don" + "t").
const WORD_JOINERS = new Set(["'", '’', '`']);
const WORD_CHAR_RE = /[\p{L}\p{N}]/u;

/** Lowercase, width-folded (full-width ＡＢＣ → abc), without diacritics or tone marks. */
export function foldText(text: string): string {
  return text.normalize('NFKD').replace(/\p{M}/gu, '').normalize('NFKC').toLowerCase();
}

export function toPinyin(text: string): PinyinKeys {
  const normalized = text.normalize('NFKC');
  if (normalized.trim().length === 0) return { pinyin: '', initials: '' };
  const words: string[] = [];
  let initials = '';
  let word = '';
  const flush = (): void => {
    if (word.length === 0) return;
    const folded = foldText(word);
    words.push(folded);
    initials += folded[0]!.toUpperCase();
    word = '';
  };
  // Per character: Chinese characters come back with their syllable; anything else is passed through.
  for (const part of pinyin(normalized, { type: 'all', toneType: 'none', v: true })) {
    if (part.isZh && part.pinyin.length > 0) {
      flush();
      const syllable = part.pinyin.toLowerCase();
      words.push(syllable);
      initials += syllable[0]!.toUpperCase();
    } else if (WORD_CHAR_RE.test(part.origin)) {
      word += part.origin;
    } else if (!WORD_JOINERS.has(part.origin)) {
      flush();
    }
  }
  flush();
  return { pinyin: words.join(' '), initials };
}
