// Small pure helpers shared by the views: durations, language names, song validation, DOM
// building without innerHTML (titles come from the catalog and are never parsed as HTML).

/** Catalog language codes → on-screen names, Chinese first (the 语种 tab's order). */
export const LANGUAGES = [
  { code: 'zh', zh: '国语', en: 'Mandarin' },
  { code: 'yue', zh: '粤语', en: 'Cantonese' },
  { code: 'en', zh: '英语', en: 'English' },
  { code: 'ja', zh: '日语', en: 'Japanese' },
  { code: 'ko', zh: '韩语', en: 'Korean' },
  { code: 'nan', zh: '闽南语', en: 'Hokkien' },
];

export function languageName(code) {
  const l = LANGUAGES.find((x) => x.code === code);
  return l ? `${l.zh} ${l.en}` : String(code || '');
}

/** 225 → "3:45"; unknown → "--:--". */
export function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export const SONG_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * A catalog row as the player keeps it, or null when it is not one. Everything that arrives from
 * the network or from localStorage passes through here, so a bad row never reaches the screen
 * or a URL.
 */
export function toSong(row) {
  if (!row || typeof row !== 'object') return null;
  if (typeof row.id !== 'string' || !SONG_ID_RE.test(row.id)) return null;
  const text = (v, max) => (typeof v === 'string' ? v.slice(0, max) : '');
  return {
    id: row.id,
    title: text(row.title, 300) || row.id,
    artist: text(row.artist, 300),
    language: text(row.language, 50),
    initials: text(row.initials, 300),
    durationS: Number.isFinite(row.durationS) && row.durationS >= 0 ? row.durationS : 0,
    genre: text(row.genre, 100),
    version: Number.isInteger(row.version) ? row.version : 0,
  };
}

/** document.createElement with attributes and children; strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, '');
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** Two-line bilingual label: Chinese first, English under it. */
export function bi(zh, en, cls = '') {
  return el('span', { class: `bi ${cls}`.trim() }, el('span', { class: 'zh' }, zh), el('span', { class: 'en' }, en));
}
