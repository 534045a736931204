// The room set-top app: wires the queue (store.js), the player (playback.js), the streamers
// (api.js) and the 点歌 menu (views.js) to the screen and the remote. Served as static files
// by the streamer; hls.js comes from /vendor/hls.min.js. window.__ktv exposes the room's state
// for tests and for a technician's console (see player/README.md).
import { Api, STREAMERS_REFRESH_MS } from './api.js';
import { bi, el } from './format.js';
import { focusables, focusElement, moveFocus } from './nav.js';
import { Playback } from './playback.js';
import { RoomStore } from './store.js';
import { stateMessage, Views } from './views.js';

const params = new URLSearchParams(location.search);
/** Seconds without input before the menu hides while a chosen song plays (0: never). */
const MENU_AUTOHIDE_S = Math.max(0, Number(params.get('autohide') ?? 30) || 0);
/** How 原唱/伴唱 switch: 'next' (seamless, hls.nextAudioTrack) or 'immediate' (hls.audioTrack). */
const AUDIO_SWITCH = params.get('audioSwitch') === 'immediate' ? 'immediate' : 'next';
const IDLE_LIST_LIMIT = 30;
const IDLE_RETRY_MS = 10_000;
const TOAST_MS = 3500;
const OSD_MS = 1500;
const VOLUME_STEP = 0.1;
/** The next-up card shows for the last NEXT_UP_S seconds (a third of a short song at most). */
const NEXT_UP_S = 20;
const HLS_LOAD_RETRY_MS = [1000, 2000, 5000, 10_000];

const $ = (id) => document.getElementById(id);

const TABS = [
  { id: 'initials', zh: '拼音点歌', en: 'Initials' },
  { id: 'search', zh: '搜索', en: 'Search' },
  { id: 'singers', zh: '歌星', en: 'Singers' },
  { id: 'languages', zh: '语种', en: 'Languages' },
  { id: 'newest', zh: '新歌', en: 'New songs' },
  { id: 'queue', zh: '已点', en: 'Queue' },
];

function setSaverMessage(zh, en) {
  $('saver-msg').replaceChildren(el('span', { class: 'zh' }, zh), el('span', { class: 'en' }, en));
}

function safeLocalStorage() {
  try {
    const s = window.localStorage;
    s.getItem('ktv.probe');
    return s;
  } catch {
    return null;
  }
}

/** hls.js from the streamer; a failed load is retried (the streamer may be restarting). */
async function loadHls() {
  for (let attempt = 0; ; attempt++) {
    if (window.Hls) return window.Hls;
    if (attempt > 0 || document.readyState === 'complete') {
      setSaverMessage('正在加载播放组件…', 'Loading the player component…');
      await new Promise((resolve) => {
        const s = document.createElement('script');
        s.src = `/vendor/hls.min.js?retry=${attempt}`;
        s.onload = resolve;
        s.onerror = resolve;
        document.head.append(s);
      });
      if (window.Hls) return window.Hls;
      await new Promise((r) => setTimeout(r, HLS_LOAD_RETRY_MS[Math.min(attempt, HLS_LOAD_RETRY_MS.length - 1)]));
    } else {
      await new Promise((r) => window.addEventListener('load', r, { once: true }));
    }
  }
}

class App {
  constructor(Hls) {
    this.api = new Api(location.origin);
    this.store = new RoomStore(safeLocalStorage());
    this.playback = new Playback($('video'), { Hls, api: this.api, audioSwitch: AUDIO_SWITCH });
    this.playback.vocal = this.store.vocal;
    this.playback.setVolume(this.store.volume);
    this.idle = false;
    this.idleSongs = [];
    this.idleIndex = 0;
    this.idleTimer = null;
    this.framed = false;
    this.menuOpen = true;
    this.tab = 'initials';
    this.lastInputMs = performance.now();
    this.lastToggleAtMs = null;
    this.views = new Views({
      content: $('content'),
      api: this.api,
      store: this.store,
      actions: {
        add: (song, top, atMs) => this.choose(song, top, atMs),
        skip: () => this.skip(),
        replay: () => this.replay(),
        toast: (zh, en, kind) => this.toast(zh, en, kind),
      },
    });
    this.buildTabs();
    this.buildControls();
    this.wire();
    this.showTab(this.tab);
    this.tickClock();
    setInterval(() => this.tickClock(), 1000);
    setInterval(() => this.checkAutohide(), 1000);
    this.api.refreshStreamers();
    setInterval(() => this.api.refreshStreamers(), STREAMERS_REFRESH_MS);
    this.start();
    // A remote needs a focused element from the first key press on.
    if (this.menuOpen) focusElement(this.tabButton(this.tab));
  }

  // ---- start / queue ----------------------------------------------------------------------

  start() {
    const { current, positionS } = this.store;
    if (current) {
      // After a reload or a power cut: the same song, a moment before where it was.
      this.playEntry(current, { startS: Math.max(0, positionS - 2), reason: 'restore' });
    } else if (this.store.queue.length > 0) {
      this.next('restore');
    } else {
      this.enterIdle();
    }
    this.render();
  }

  playEntry(entry, { requestedAtMs, startS = 0, reason = '' } = {}) {
    this.idle = false;
    clearTimeout(this.idleTimer);
    this.framed = false;
    this.playback.load(entry, { startS, requestedAtMs, reason });
    this.render();
  }

  /** The next queued song, or 公播 when the queue is empty. */
  next(reason = 'next', requestedAtMs = performance.now()) {
    const entry = this.store.advance();
    console.info(`next (${reason}): ${entry ? entry.id : '公播'}`);
    if (entry) this.playEntry(entry, { requestedAtMs, reason });
    else this.enterIdle();
  }

  /** 点歌 (top=false) or 优先 (top=true) from a song list. */
  choose(song, top, atMs) {
    const requestedAtMs = Number.isFinite(atMs) && atMs > 0 ? atMs : performance.now();
    const nothingChosenPlaying = !this.store.current;
    const entry = top ? this.store.addTop(song) : this.store.add(song);
    if (!entry) {
      this.toast('已点歌曲已满', 'The queue is full', 'error');
      return;
    }
    if (nothingChosenPlaying) {
      this.toast(`开始播放 ${song.title}`, `Playing ${song.title}`, 'info');
      this.next('chosen', requestedAtMs);
      return;
    }
    const pos = this.store.queue.indexOf(entry) + 1;
    this.toast(`${top ? '优先' : '已点'}：${song.title}（第${pos}首）`, `${top ? 'Moved to the top' : 'Added'}: ${song.title} (#${pos})`, 'info');
  }

  skip() {
    if (this.idle) {
      this.nextIdle();
      return;
    }
    this.toast('切歌', 'Skipped', 'info');
    this.next('skip');
  }

  replay() {
    if (this.idle || !this.store.current) return;
    this.playback.replay();
    this.osd('重唱 Replay');
  }

  // ---- 公播 idle ------------------------------------------------------------------------------

  async enterIdle() {
    this.store.clearCurrent();
    this.idle = true;
    this.framed = false;
    this.render();
    clearTimeout(this.idleTimer);
    try {
      const songs = await this.api.songs({ sort: 'new', limit: IDLE_LIST_LIMIT });
      if (!this.idle) return;
      this.idleSongs = songs;
      if (songs.length === 0) {
        this.playback.stop();
        setSaverMessage('公播 · 曲库暂无歌曲', 'Idle · the library has no songs yet');
        this.idleTimer = setTimeout(() => this.idle && this.enterIdle(), IDLE_RETRY_MS * 3);
        return;
      }
      this.idleIndex = Math.floor(Math.random() * songs.length);
      this.playIdle();
    } catch {
      if (!this.idle) return;
      this.playback.stop();
      setSaverMessage('公播 · 正在连接曲库…', 'Idle · connecting to the song library…');
      this.idleTimer = setTimeout(() => this.idle && this.enterIdle(), IDLE_RETRY_MS);
    }
    this.render();
  }

  playIdle() {
    const song = this.idleSongs[this.idleIndex % this.idleSongs.length];
    this.framed = false;
    this.playback.load(song, { idle: true, reason: 'idle' });
    this.render();
  }

  nextIdle() {
    if (!this.idle || this.idleSongs.length === 0) return;
    this.idleIndex = (this.idleIndex + 1) % this.idleSongs.length;
    this.playIdle();
  }

  // ---- player events ----------------------------------------------------------------------

  wire() {
    const p = this.playback;
    p.addEventListener('state', () => this.render());
    p.addEventListener('first-frame', () => {
      this.framed = true;
      this.render();
    });
    p.addEventListener('reconnecting', () => this.render());
    p.addEventListener('ended', () => {
      if (this.idle) this.nextIdle();
      else this.next('ended');
    });
    p.addEventListener('time', (e) => {
      if (!this.idle) this.store.notePosition(e.detail.currentTime);
      this.renderNextUp(e.detail.currentTime, e.detail.duration);
    });
    p.addEventListener('unplayable', () => {
      const title = p.song ? p.song.title : '';
      this.toast(`无法播放 ${title}，跳过`, `Cannot play ${title}; skipping`, 'error');
      setTimeout(() => (this.idle ? this.nextIdle() : this.next('unplayable')), 1500);
    });
    p.addEventListener('needs-gesture', () => {
      $('gesture').hidden = false;
      focusElement($('gesture-btn'));
    });
    p.addEventListener('message', (e) => this.toast(e.detail.zh, e.detail.en, 'error'));
    $('gesture-btn').addEventListener('click', () => {
      $('gesture').hidden = true;
      p.resumeAfterGesture();
    });
    this.api.addEventListener('switched', (e) => this.toast('已切换到备用服务器', `Switched to streamer ${e.detail.base}`, 'info'));
    this.store.onChange(() => this.render());

    document.addEventListener('keydown', (e) => this.onKey(e), true);
    for (const t of ['pointerdown', 'wheel']) document.addEventListener(t, () => this.touchActivity(), { passive: true });
    // A tap on the picture opens or closes the menu (touch screens, mice).
    for (const id of ['video', 'screensaver']) $(id).addEventListener('click', () => this.toggleMenu());
    const savePosition = () => {
      if (!this.idle) this.store.notePosition(p.video.currentTime, true);
    };
    window.addEventListener('pagehide', savePosition);
    document.addEventListener('visibilitychange', savePosition);
  }

  // ---- keys -------------------------------------------------------------------------------

  touchActivity() {
    this.lastInputMs = performance.now();
    if (this.playback.needsGesture) {
      $('gesture').hidden = true;
      this.playback.resumeAfterGesture();
    }
  }

  onKey(e) {
    this.touchActivity();
    const target = e.target;
    const typing = target instanceof HTMLInputElement;
    const dir = { ArrowUp: 'up', ArrowDown: 'down', ArrowLeft: 'left', ArrowRight: 'right' }[e.key];
    if (typing) {
      if (e.key === 'Escape') {
        e.preventDefault();
        focusElement(this.tabButton(this.tab));
      } else if (dir === 'up' || (dir === 'left' && target.selectionStart === 0 && target.selectionEnd === 0)) {
        e.preventDefault();
        moveFocus($('menu'), dir);
      }
      return; // everything else is typing
    }
    if (this.menuOpen && this.views.onKey(e)) {
      e.preventDefault();
      return;
    }
    if (dir) {
      e.preventDefault();
      if (!this.menuOpen) this.openMenu();
      else moveFocus($('menu'), dir);
      return;
    }
    switch (e.key) {
      case 'Enter':
        if (!this.menuOpen) {
          e.preventDefault();
          this.openMenu();
        }
        return; // inside the menu, Enter clicks the focused button
      case 'Escape':
      case 'Backspace':
      case 'm':
      case 'M':
      case 'ContextMenu':
      case 'BrowserBack':
      case 'GoBack':
        e.preventDefault();
        this.toggleMenu();
        return;
      case 'v':
      case 'V':
        e.preventDefault();
        this.toggleVocal(e.timeStamp);
        return;
      case ' ':
      case 'p':
      case 'P':
      case 'MediaPlayPause':
        e.preventDefault();
        this.togglePause();
        return;
      case '+':
      case '=':
      case 'AudioVolumeUp':
        e.preventDefault();
        this.changeVolume(VOLUME_STEP);
        return;
      case '-':
      case '_':
      case 'AudioVolumeDown':
        e.preventDefault();
        this.changeVolume(-VOLUME_STEP);
        return;
      case 'n':
      case 'N':
      case 'MediaTrackNext':
        e.preventDefault();
        this.skip();
        return;
      case 'r':
      case 'R':
        e.preventDefault();
        this.replay();
        return;
      default:
    }
  }

  toggleVocal(atMs) {
    const pressedAtMs = Number.isFinite(atMs) && atMs > 0 ? atMs : performance.now();
    this.lastToggleAtMs = pressedAtMs;
    this.playback.toggleVocal(pressedAtMs);
    this.store.setVocal(this.playback.vocal);
    this.osd(this.playback.vocal === 'vocal' ? '原唱 Vocal' : '伴唱 Backing');
  }

  togglePause() {
    if (this.idle) return;
    this.playback.togglePause();
  }

  changeVolume(delta) {
    this.store.setVolume(this.store.volume + delta);
    this.playback.setVolume(this.store.volume);
    this.osd(`音量 Volume ${Math.round(this.store.volume * 100)}`);
  }

  // ---- menu -------------------------------------------------------------------------------

  tabButton(id) {
    return $('tabs').querySelector(`[data-tab="${id}"]`);
  }

  buildTabs() {
    const tabs = $('tabs');
    for (const t of TABS) {
      tabs.append(el('button', { class: 'tab', dataset: { tab: t.id }, onclick: () => this.showTab(t.id) }, bi(t.zh, t.en)));
    }
  }

  showTab(id) {
    this.tab = id;
    for (const b of $('tabs').children) b.classList.toggle('active', b.dataset.tab === id);
    this.views.show(id);
    this.render();
  }

  buildControls() {
    const c = $('controls');
    const button = (id, zh, en, fn) => el('button', { id, onclick: fn }, bi(zh, en));
    c.append(
      button('ctl-vocal', '原唱/伴唱', 'Vocal (V)', (e) => this.toggleVocal(e.timeStamp)),
      button('ctl-pause', '暂停/播放', 'Pause (P)', () => this.togglePause()),
      button('ctl-skip', '切歌', 'Skip (N)', () => this.skip()),
      button('ctl-replay', '重唱', 'Replay (R)', () => this.replay()),
      button('ctl-voldown', '音量 −', 'Volume −', () => this.changeVolume(-VOLUME_STEP)),
      button('ctl-volup', '音量 +', 'Volume +', () => this.changeVolume(VOLUME_STEP)),
      button('ctl-close', '关闭菜单', 'Close (Esc)', () => this.closeMenu()),
    );
  }

  openMenu() {
    this.menuOpen = true;
    this.lastInputMs = performance.now();
    this.render();
    const menu = $('menu');
    const keep = this.lastFocus && menu.contains(this.lastFocus) && focusables(menu).includes(this.lastFocus);
    focusElement(keep ? this.lastFocus : this.tabButton(this.tab));
  }

  closeMenu() {
    const active = document.activeElement;
    // Reopening lands where the person was, except on the close button itself.
    if ($('menu').contains(active) && active.id !== 'ctl-close') this.lastFocus = active;
    this.menuOpen = false;
    if (active && active.blur) active.blur();
    this.render();
  }

  toggleMenu() {
    if (this.menuOpen) this.closeMenu();
    else this.openMenu();
  }

  checkAutohide() {
    if (!MENU_AUTOHIDE_S || !this.menuOpen || this.idle || this.playback.state !== 'playing') return;
    if (performance.now() - this.lastInputMs > MENU_AUTOHIDE_S * 1000) this.closeMenu();
  }

  // ---- screen -----------------------------------------------------------------------------

  get state() {
    if (this.idle) return 'idle';
    const s = this.playback.state;
    return s === 'stopped' ? 'idle' : s;
  }

  render() {
    const p = this.playback;
    const song = this.idle ? null : this.store.current;
    $('menu').hidden = !this.menuOpen;
    $('badge-idle').hidden = !this.idle;
    $('badge-reconnect').hidden = !p.reconnecting;
    $('badge-paused').hidden = !(song && p.state === 'paused');
    // Never a blank screen: the clock and a message whenever no picture is up.
    const picture = p.song && this.framed && p.state !== 'stopped';
    $('screensaver').hidden = !!picture;
    if (!picture && p.song && p.state === 'loading') setSaverMessage(`正在加载 ${p.song.title}…`, `Loading ${p.song.title}…`);
    else if (!picture && !this.idle && !p.song) setSaverMessage('按确认键点歌', 'Press OK to choose songs');
    const label = this.idle ? '公播 Idle' : { loading: '加载中 Loading', playing: '正在播放 Playing', paused: '已暂停 Paused' }[p.state] || '';
    $('now-label').textContent = label;
    const shown = song || (this.idle ? p.song : null);
    $('now-title').textContent = shown ? shown.title : '';
    $('now-artist').textContent = shown ? shown.artist : '';
    $('now-vocal').textContent = p.vocal === 'vocal' ? '原唱 Vocal' : '伴唱 Backing';
    $('now-volume').textContent = `音量 Vol ${Math.round(this.store.volume * 100)}`;
    $('now-queue').textContent = `已点 Queue ${this.store.queue.length}`;
    const queueTab = this.tabButton('queue');
    if (queueTab) queueTab.replaceChildren(bi(`已点 (${this.store.queue.length})`, 'Queue'));
    if (this.idle || !song) $('nextup').hidden = true;
    document.body.dataset.state = this.state;
  }

  renderNextUp(currentTime, duration) {
    const card = $('nextup');
    const next = this.store.queue[0];
    if (this.idle || !next || !Number.isFinite(duration) || duration <= 0) {
      card.hidden = true;
      return;
    }
    const remaining = duration - currentTime;
    const show = remaining <= Math.min(NEXT_UP_S, duration / 3);
    if (show && (card.hidden || card.dataset.entryId !== next.entryId)) {
      card.dataset.entryId = next.entryId;
      $('nextup-title').textContent = next.title;
      $('nextup-artist').textContent = next.artist;
    }
    card.hidden = !show;
  }

  tickClock() {
    const now = new Date();
    $('clock').textContent = `${String(now.getHours()).padStart(2, '0')}:${String(now.getMinutes()).padStart(2, '0')}`;
    $('date').textContent = now.toLocaleDateString('zh-CN', { year: 'numeric', month: 'long', day: 'numeric', weekday: 'long' });
  }

  toast(zh, en, kind = 'error') {
    const t = $('toast');
    t.className = `toast ${kind}`;
    t.replaceChildren(el('span', { class: 'zh' }, zh), el('span', { class: 'en' }, en));
    t.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => (t.hidden = true), TOAST_MS);
  }

  osd(text) {
    const o = $('osd');
    o.textContent = text;
    o.hidden = false;
    clearTimeout(this.osdTimer);
    this.osdTimer = setTimeout(() => (o.hidden = true), OSD_MS);
  }
}

/** window.__ktv: a read-only view of the room for tests and technicians. */
function expose(app) {
  const p = app.playback;
  const copy = (e) => (e ? { ...e } : null);
  window.__ktv = {
    get state() { return app.state; },
    get queue() { return app.store.queue.map(copy); },
    get current() { return app.idle ? null : copy(app.store.current); },
    get playing() { return copy(p.song); },
    get idle() { return app.idle; },
    get vocal() { return p.vocal; },
    get toggleLatencyMs() { return p.toggleLatencyMs.slice(); },
    get toggles() { return p.toggles.map((t) => ({ ...t })); },
    get lastToggleAtMs() { return app.lastToggleAtMs; },
    get ttffMs() { return p.ttff.map((t) => t.ms); },
    get ttff() { return p.ttff.map((t) => ({ ...t })); },
    get stalls() { return p.stalls; },
    get reconnecting() { return p.reconnecting; },
    get streamer() { return app.api.base; },
    get streamers() { return app.api.bases.slice(); },
    get volume() { return app.store.volume; },
    get menuOpen() { return app.menuOpen; },
    get audioSwitch() { return p.audioSwitch; },
    get hls() { return p.hls; },
    get video() { return p.video; },
  };
}

function reportUnexpected(app, error) {
  console.error('ktv player:', error);
  // Never a stack trace on the TV: a short note, and the room carries on.
  if (app) app.toast('出了点小问题，播放继续', 'Something went wrong; the player carried on', 'error');
}

let app = null;
window.addEventListener('error', (e) => reportUnexpected(app, e.error || e.message));
window.addEventListener('unhandledrejection', (e) => reportUnexpected(app, e.reason));

async function main() {
  const Hls = await loadHls();
  if (!Hls.isSupported()) {
    setSaverMessage('此设备的浏览器不支持播放', 'This browser cannot play the streams (no Media Source Extensions)');
    $('content').replaceChildren(stateMessage('error', '此设备的浏览器不支持播放', 'This browser cannot play the streams'));
    return;
  }
  app = new App(Hls);
  expose(app);
}

main().catch((error) => {
  console.error(error);
  setSaverMessage('启动失败，正在重试…', 'Could not start; retrying…');
  setTimeout(() => location.reload(), 10_000);
});
