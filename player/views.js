// The 点歌 menu's views: pinyin initials keyboard, free text search, singers, languages, new
// songs and the queue (已点). Each view renders into the content pane and may take keys first
// (the initials keyboard takes letters). Every fetch shows a state: loading, empty, error with
// an automatic retry; never a blank pane.
import { SEARCH_LIMIT, CATALOG_SCAN_LIMIT } from './api.js';
import { bi, el, formatDuration, LANGUAGES, languageName } from './format.js';
import { focusElement, focusables } from './nav.js';

const SEARCH_DEBOUNCE_MS = 180;
const RETRY_AFTER_ERROR_MS = 5000;
const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
/** Initials typed at most (a title's initials are short; bound the query). */
const INITIALS_MAX = 12;

export function stateMessage(kind, zh, en) {
  return el('div', { class: `state-msg ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, el('div', { class: 'zh' }, zh), el('div', { class: 'en' }, en));
}

/** A song row: the row itself is 点歌 (Enter/click), 优先 beside it adds to the top. */
export function songRow(song, actions, index) {
  const main = el(
    'button',
    { class: 'song', dataset: { songId: song.id, action: 'add' }, 'aria-label': `点歌 ${song.title} ${song.artist}`, onclick: (e) => actions.add(song, false, e.timeStamp) },
    el('span', { class: 'title' }, song.title),
    el('span', { class: 'artist' }, [song.artist, song.language ? languageName(song.language) : ''].filter(Boolean).join(' · ')),
    el('span', { class: 'dur' }, formatDuration(song.durationS)),
  );
  const top = el('button', { class: 'action', dataset: { songId: song.id, action: 'top' }, onclick: (e) => actions.add(song, true, e.timeStamp) }, bi('优先', 'Top'));
  return el('li', { class: 'row', dataset: { index: String(index) } }, main, top);
}

/**
 * Runs `load` and shows its songs in `box`; an error shows a message and retries by itself while
 * the view is on screen. Returns a cancel function.
 */
export function loadSongs(box, load, actions, emptyMsg) {
  let ctl = new AbortController();
  let timer = null;
  let done = false;
  const run = async () => {
    box.replaceChildren(stateMessage('loading', '正在加载…', 'Loading…'));
    try {
      const songs = await load(ctl.signal);
      if (done) return;
      if (songs.length === 0) {
        box.replaceChildren(stateMessage('empty', emptyMsg[0], emptyMsg[1]));
        return;
      }
      box.replaceChildren(el('ul', { class: 'list', role: 'list' }, songs.map((s, i) => songRow(s, actions, i))));
    } catch (error) {
      if (done || ctl.signal.aborted) return;
      if (error && error.status >= 400 && error.status < 500) {
        // The streamer refused this request: asking again will not change the answer.
        box.replaceChildren(stateMessage('error', '无法查询', String(error.message).slice(0, 200)));
        return;
      }
      box.replaceChildren(stateMessage('error', '暂时无法连接曲库，正在重试…', 'Cannot reach the song library; retrying…'));
      timer = setTimeout(() => {
        ctl = new AbortController();
        run();
      }, RETRY_AFTER_ERROR_MS);
    }
  };
  run();
  return () => {
    done = true;
    clearTimeout(timer);
    ctl.abort();
  };
}

export class Views {
  /**
   * @param {{ content: HTMLElement, api: import('./api.js').Api, store: import('./store.js').RoomStore,
   *           actions: { add(song, top, atMs): void, skip(): void, replay(): void, toast(zh, en, kind?): void } }} deps
   */
  constructor({ content, api, store, actions }) {
    this.content = content;
    this.api = api;
    this.store = store;
    this.actions = actions;
    this.cleanup = [];
    this.current = null;
    this.initials = '';
    this.searchText = '';
    this.language = 'zh';
    this.singer = null;
  }

  dispose() {
    for (const fn of this.cleanup.splice(0)) fn();
  }

  show(name) {
    this.dispose();
    this.current = name;
    this.content.replaceChildren();
    this.content.dataset.view = name;
    const render = {
      initials: () => this.renderInitials(),
      search: () => this.renderSearch(),
      singers: () => this.renderSingers(),
      languages: () => this.renderLanguages(),
      newest: () => this.renderNewest(),
      queue: () => this.renderQueue(),
    }[name];
    (render || (() => this.renderInitials()))();
  }

  /** Keys a view takes before the global shortcuts; true when used. */
  onKey(e) {
    if (this.current === 'initials' && !e.ctrlKey && !e.metaKey && !e.altKey) {
      if (/^[a-zA-Z]$/.test(e.key)) {
        this.typeInitial(e.key.toUpperCase());
        return true;
      }
      if (e.key === 'Backspace' || e.key === 'Delete') {
        this.typeInitial('DEL');
        return true;
      }
    }
    if (this.current === 'singers' && this.singer && (e.key === 'Backspace' || e.key === 'Escape')) {
      this.singer = null;
      this.show('singers');
      return true;
    }
    return false;
  }

  // ---- 拼音 initials ---------------------------------------------------------------------

  renderInitials() {
    const typed = el('div', { class: 'typed', id: 'typed', 'aria-live': 'polite' });
    const keys = el('div', { class: 'keys', role: 'group', 'aria-label': '拼音首字母 Pinyin initials' });
    for (const ch of LETTERS) keys.append(el('button', { class: 'key', dataset: { key: ch }, onclick: () => this.typeInitial(ch) }, ch));
    const edit = el('div', { class: 'typed-row' },
      typed,
      el('button', { class: 'key edit', dataset: { key: 'DEL' }, onclick: () => this.typeInitial('DEL') }, bi('删除', 'Delete')),
      el('button', { class: 'key edit', dataset: { key: 'CLEAR' }, onclick: () => this.typeInitial('CLEAR') }, bi('清空', 'Clear')));
    const results = el('div', { class: 'pane', id: 'initials-results' });
    this.content.append(
      el('h2', { class: 'view-title' }, bi('拼音点歌', 'Pinyin initials')),
      el('div', { class: 'split' }, el('div', { class: 'pane' }, edit, keys), results),
    );
    this.initialsBox = { typed, results };
    this.cleanup.push(() => {
      clearTimeout(this.initialsTimer);
      if (this.initialsCancel) this.initialsCancel();
      this.initialsCancel = null;
    });
    this.refreshInitials();
  }

  typeInitial(key) {
    if (key === 'DEL') this.initials = this.initials.slice(0, -1);
    else if (key === 'CLEAR') this.initials = '';
    else if (this.initials.length < INITIALS_MAX) this.initials += key;
    if (this.current === 'initials') this.refreshInitials();
  }

  refreshInitials() {
    const { typed, results } = this.initialsBox;
    typed.replaceChildren(this.initials ? this.initials : el('span', { class: 'placeholder' }, '例如 e.g. ZJL = 周杰伦'));
    clearTimeout(this.initialsTimer);
    if (this.initialsCancel) this.initialsCancel();
    this.initialsCancel = null;
    if (!this.initials) {
      results.replaceChildren(stateMessage('hint', '输入歌名或歌星的拼音首字母', 'Type the pinyin initials of a title or a singer'));
      return;
    }
    const q = this.initials;
    this.initialsTimer = setTimeout(() => {
      this.initialsCancel = loadSongs(results, (signal) => this.api.songs({ q, limit: SEARCH_LIMIT }, { signal }), this.actions, ['没有找到歌曲', `No songs match ${q}`]);
    }, SEARCH_DEBOUNCE_MS);
  }

  // ---- 搜索 free text ----------------------------------------------------------------------

  renderSearch() {
    const input = el('input', { class: 'search-input', id: 'search-input', type: 'search', autocomplete: 'off', maxlength: '100', placeholder: '歌名或歌星 Title or singer', 'aria-label': '搜索 Search' });
    input.value = this.searchText;
    const results = el('div', { class: 'pane', id: 'search-results' });
    this.content.append(el('h2', { class: 'view-title' }, bi('搜索', 'Search')), input, results);
    let timer = null;
    let cancel = null;
    const run = () => {
      if (cancel) cancel();
      cancel = null;
      const q = input.value.trim();
      this.searchText = input.value;
      if (!q) {
        results.replaceChildren(stateMessage('hint', '输入歌名、歌星或拼音', 'Type a title, a singer or pinyin'));
        return;
      }
      cancel = loadSongs(results, (signal) => this.api.songs({ q, limit: SEARCH_LIMIT }, { signal }), this.actions, ['没有找到歌曲', `No songs match “${q}”`]);
    };
    input.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(run, SEARCH_DEBOUNCE_MS);
    });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === 'ArrowDown') {
        const first = results.querySelector('button');
        if (first) {
          e.preventDefault();
          focusElement(first);
        }
      }
    });
    this.cleanup.push(() => {
      clearTimeout(timer);
      if (cancel) cancel();
    });
    run();
  }

  // ---- 歌星 singers --------------------------------------------------------------------------

  renderSingers() {
    if (this.singer) {
      const name = this.singer;
      const back = el('button', { class: 'back', onclick: () => { this.singer = null; this.show('singers'); } }, bi('‹ 返回', 'Back'));
      const results = el('div', { class: 'pane', id: 'singer-songs' });
      this.content.append(el('h2', { class: 'view-title' }, back, name), results);
      this.cleanup.push(loadSongs(results, (signal) => this.api.songs({ artist: name, limit: SEARCH_LIMIT }, { signal }), this.actions, ['这位歌星暂无歌曲', 'No songs by this singer']));
      return;
    }
    const box = el('div', { class: 'pane', id: 'singers' });
    this.content.append(el('h2', { class: 'view-title' }, bi('歌星', 'Singers')), box);
    let ctl = new AbortController();
    let timer = null;
    const run = async () => {
      box.replaceChildren(stateMessage('loading', '正在加载…', 'Loading…'));
      try {
        // The catalog's newest songs name the singers a room can pick from.
        const songs = await this.api.songs({ sort: 'new', limit: CATALOG_SCAN_LIMIT }, { signal: ctl.signal });
        const counts = new Map();
        for (const s of songs) if (s.artist) counts.set(s.artist, (counts.get(s.artist) || 0) + 1);
        const collator = new Intl.Collator(['zh-Hans-CN-u-co-pinyin', 'en']);
        const names = [...counts.keys()].sort(collator.compare);
        if (names.length === 0) {
          box.replaceChildren(stateMessage('empty', '曲库暂无歌星', 'No singers in the library yet'));
          return;
        }
        box.replaceChildren(
          el('div', { class: 'grid', role: 'list' }, names.map((n) =>
            el('button', { class: 'singer', dataset: { artist: n }, onclick: () => { this.singer = n; this.show('singers'); } },
              el('div', {}, n), el('div', { class: 'count' }, `${counts.get(n)} 首 songs`)))),
        );
      } catch (error) {
        if (ctl.signal.aborted) return;
        box.replaceChildren(stateMessage('error', '暂时无法连接曲库，正在重试…', 'Cannot reach the song library; retrying…'));
        timer = setTimeout(() => { ctl = new AbortController(); run(); }, RETRY_AFTER_ERROR_MS);
      }
    };
    run();
    this.cleanup.push(() => { clearTimeout(timer); ctl.abort(); });
  }

  // ---- 语种 languages ------------------------------------------------------------------------

  renderLanguages() {
    const row = el('div', { class: 'controls', role: 'group', 'aria-label': '语种 Languages' });
    const results = el('div', { class: 'pane', id: 'language-songs' });
    let cancel = null;
    const pick = (code) => {
      this.language = code;
      for (const b of row.children) b.classList.toggle('active', b.dataset.lang === code);
      if (cancel) cancel();
      cancel = loadSongs(results, (signal) => this.api.songs({ language: code, sort: 'new', limit: SEARCH_LIMIT }, { signal }), this.actions, ['这个语种暂无歌曲', 'No songs in this language yet']);
    };
    for (const l of LANGUAGES) row.append(el('button', { dataset: { lang: l.code }, onclick: () => pick(l.code) }, bi(l.zh, l.en)));
    this.content.append(el('h2', { class: 'view-title' }, bi('语种', 'Languages')), row, results);
    this.cleanup.push(() => cancel && cancel());
    pick(this.language);
  }

  // ---- 新歌 newest ---------------------------------------------------------------------------

  renderNewest() {
    const results = el('div', { class: 'pane', id: 'newest-songs' });
    this.content.append(el('h2', { class: 'view-title' }, bi('新歌', 'New songs')), results);
    this.cleanup.push(loadSongs(results, (signal) => this.api.songs({ sort: 'new', limit: SEARCH_LIMIT }, { signal }), this.actions, ['曲库暂无歌曲', 'No songs in the library yet']));
  }

  // ---- 已点 queue ----------------------------------------------------------------------------

  renderQueue() {
    const box = el('div', { class: 'pane', id: 'queue' });
    this.content.append(el('h2', { class: 'view-title' }, bi('已点', 'Queue')), box);
    const draw = () => {
      const focusedKey = document.activeElement && this.content.contains(document.activeElement) ? focusKey(document.activeElement) : null;
      const { current, queue } = this.store;
      const rows = [];
      if (current) {
        rows.push(el('li', { class: 'row current', dataset: { entryId: current.entryId } },
          el('span', { class: 'pos' }, '▶'),
          el('div', { class: 'song', tabindex: '-1' }, el('span', { class: 'title' }, current.title), el('span', { class: 'artist' }, `正在播放 Now playing · ${current.artist}`), el('span', { class: 'dur' }, formatDuration(current.durationS))),
          el('button', { class: 'action', dataset: { action: 'replay' }, onclick: () => this.actions.replay() }, bi('重唱', 'Replay')),
          el('button', { class: 'action', dataset: { action: 'skip' }, onclick: () => this.actions.skip() }, bi('切歌', 'Skip'))));
      }
      queue.forEach((e, i) => {
        rows.push(el('li', { class: 'row', dataset: { entryId: e.entryId, songId: e.id } },
          el('span', { class: 'pos' }, String(i + 1)),
          el('div', { class: 'song', tabindex: '-1' }, el('span', { class: 'title' }, e.title), el('span', { class: 'artist' }, e.artist), el('span', { class: 'dur' }, formatDuration(e.durationS))),
          el('button', { class: 'action', dataset: { action: 'top', entryId: e.entryId }, disabled: i === 0 ? true : undefined, onclick: () => this.store.moveTop(e.entryId) }, bi('优先', 'Top')),
          el('button', { class: 'action', dataset: { action: 'remove', entryId: e.entryId }, onclick: () => this.store.remove(e.entryId) }, bi('删除', 'Remove'))));
      });
      if (rows.length === 0) {
        box.replaceChildren(stateMessage('empty', '还没有点歌，去拼音点歌或搜索看看', 'Nothing queued yet: find songs by initials or search'));
        return;
      }
      box.replaceChildren(el('ul', { class: 'list', role: 'list' }, rows));
      if (focusedKey) restoreFocus(box, focusedKey);
    };
    draw();
    this.cleanup.push(this.store.onChange(draw));
  }
}

/** Where focus was in the queue, to put it back after a redraw (the entry moved, or went). */
function focusKey(node) {
  const row = node.closest('[data-entry-id]');
  return { entryId: row && row.dataset.entryId, action: node.dataset.action, index: row ? [...row.parentNode.children].indexOf(row) : 0 };
}

function restoreFocus(box, key) {
  let target = key.entryId ? box.querySelector(`[data-entry-id="${CSS.escape(key.entryId)}"] [data-action="${CSS.escape(key.action || '')}"]:not([disabled])`) : null;
  if (!target) {
    const buttons = focusables(box);
    target = buttons[Math.min(buttons.length - 1, Math.max(0, key.index * 2))] || null;
  }
  if (target) focusElement(target);
}
