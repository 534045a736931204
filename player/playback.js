// One <video>, one hls.js instance per song: loading, error recovery that never gives up,
// 原唱/伴唱 switching with its latency measured, stall counting and time to first frame. Knows
// nothing about the queue or the screen: it reports through events ('state', 'ended',
// 'reconnecting', 'vocal', 'unplayable', 'needs-gesture', 'message').
//
// Budget (why the numbers): a room must ride out a 30 s network cut, so 60 s of media are
// buffered ahead (at 45 Mbit/s Chrome's ~150 MB SourceBuffer quota caps that near 26 s; hls.js
// then lowers its target itself). Loads are retried for ~40 s inside hls.js and after that by
// us, forever, with backoff capped at RETRY_MAX_DELAY_MS.

export const RETRY_BASE_DELAY_MS = 1000;
export const RETRY_MAX_DELAY_MS = 8000;
/** Media errors closer together than this get the codec-swap recovery, then a rebuild. */
const MEDIA_ERROR_WINDOW_MS = 5000;
const MEDIA_ERRORS_BEFORE_REBUILD = 4;
/** No progress for this long while it should be playing: reload from where it stopped. */
const STUCK_AFTER_MS = 20_000;
const WATCHDOG_INTERVAL_MS = 1000;
/** Latency samples kept (a long evening of toggling must not grow memory). */
const SAMPLES_MAX = 500;

/** hls.js load retry: exponential backoff; network errors (status 0), 5xx, 408 and 429 retried. */
function retry(maxNumRetry) {
  return {
    maxNumRetry,
    retryDelayMs: 500,
    maxRetryDelayMs: 4000,
    backoff: 'exponential',
    // hls.js does not retry status 0 while navigator.onLine is true (a refused connection to a
    // restarting streamer): for a room box that is exactly the case to retry.
    shouldRetry: (config, count, isTimeout, response) => {
      if (!config || count >= config.maxNumRetry) return false;
      const code = response && typeof response.code === 'number' ? response.code : 0;
      return isTimeout || code === 0 || code >= 500 || code === 408 || code === 429;
    },
  };
}

function loadPolicy(ttfbMs, loadMs, retries) {
  return { default: { maxTimeToFirstByteMs: ttfbMs, maxLoadTimeMs: loadMs, timeoutRetry: retry(retries), errorRetry: retry(retries) } };
}

export const HLS_CONFIG = {
  enableWorker: true,
  lowLatencyMode: false,
  startFragPrefetch: true,
  maxBufferLength: 60,
  maxMaxBufferLength: 120,
  maxBufferSize: 150 * 1000 * 1000,
  backBufferLength: 10,
  // 12 retries at 0.5, 1, 2, 4, 4, … s ≈ 40 s before hls.js calls a load fatal.
  fragLoadPolicy: loadPolicy(10_000, 30_000, 12),
  // The master is retried inside hls.js's loader without an ERROR event, so a room would show
  // nothing for the whole retry budget: one quick retry, then the fatal error reaches onError,
  // which shows 网络重连中 and keeps reloading with backoff (and fails over), forever.
  manifestLoadPolicy: loadPolicy(10_000, 20_000, 1),
  playlistLoadPolicy: loadPolicy(10_000, 20_000, 8),
  // nextAudioTrack keeps this much of the old rendition before the new one takes over.
  nextAudioTrackBufferFlushForwardOffset: 0.1,
};

/** The audio track of a role, by its NAME in the master (`原唱 Vocal` / `伴唱 Backing`), never by index. */
export function trackIndexForRole(tracks, role) {
  const names = (tracks || []).map((t) => String((t && t.name) || ''));
  const backing = (n) => /伴唱|伴奏|backing|karaoke|instrumental|accomp/i.test(n);
  const vocal = (n) => /原唱|vocal|人声/i.test(n) && !backing(n);
  return names.findIndex(role === 'backing' ? backing : vocal);
}

export class Playback extends EventTarget {
  /**
   * @param {HTMLVideoElement} video
   * @param {{ Hls: any, api: import('./api.js').Api, audioSwitch?: 'next' | 'immediate' }} deps
   */
  constructor(video, { Hls, api, audioSwitch = 'next' }) {
    super();
    this.video = video;
    this.Hls = Hls;
    this.api = api;
    this.audioSwitch = audioSwitch;
    this.hls = null;
    this.song = null;
    this.opts = {};
    this.session = 0;
    this.state = 'stopped';
    this.vocal = 'vocal';
    this.hasPlayed = false;
    this.reconnecting = false;
    this.stalls = 0;
    this.toggleLatencyMs = [];
    this.toggles = [];
    this.ttff = [];
    this.pendingToggle = null;
    this.fatalNetworkErrors = 0;
    this.mediaErrors = [];
    this.retryTimer = null;
    this.lastProgress = { t: 0, at: performance.now() };
    this.needsGesture = false;
    this.loader = this.makeLoader();
    this.bindVideo();
    this.watchdog = setInterval(() => this.checkProgress(), WATCHDOG_INTERVAL_MS);
  }

  /**
   * hls.js's own loader, with every URL moved onto the room's current streamer at load time:
   * a failover changes `api.base` and the next retry goes there, buffer and position intact.
   */
  makeLoader() {
    const Base = this.Hls.DefaultConfig.loader;
    const api = this.api;
    return class RoomLoader extends Base {
      load(context, config, callbacks) {
        try {
          const u = new URL(context.url);
          if (u.origin !== api.base && api.bases.includes(u.origin)) context.url = api.base + u.pathname + u.search;
        } catch {
          /* leave a URL we cannot parse alone */
        }
        super.load(context, config, callbacks);
      }
    };
  }

  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', { state });
  }

  setReconnecting(on) {
    if (this.reconnecting === on) return;
    this.reconnecting = on;
    this.emit('reconnecting', { on });
  }

  bindVideo() {
    const v = this.video;
    v.addEventListener('playing', () => {
      if (!this.song) return;
      this.hasPlayed = true;
      this.setState('playing');
    });
    v.addEventListener('pause', () => {
      if (this.song && !v.ended && this.state !== 'loading') this.setState('paused');
    });
    v.addEventListener('waiting', () => {
      // A stall: the song had started, is not paused or seeking, and ran out of media.
      if (this.song && this.hasPlayed && !v.paused && !v.seeking && !this.switchingSong) {
        this.stalls += 1;
        this.emit('stall', { stalls: this.stalls });
      }
    });
    v.addEventListener('ended', () => {
      console.info(`video ended: ${this.song && this.song.id} t=${v.currentTime} d=${v.duration}`);
      if (this.song) this.emit('ended', { song: this.song });
    });
    v.addEventListener('timeupdate', () => {
      if (this.song) this.emit('time', { currentTime: v.currentTime, duration: v.duration });
    });
  }

  /**
   * Starts a song. opts: startS (resume point), idle (公播: muted, 伴唱), requestedAtMs (the user's
   * choice, for time to first frame), reason.
   */
  load(song, opts = {}) {
    console.info(`load ${song.id} ${opts.reason || ''}${opts.recovery ? ' (recovery)' : ''} from ${Math.round(opts.startS || 0)} s`);
    this.teardown();
    this.session += 1;
    const session = this.session;
    this.song = song;
    this.opts = { ...opts };
    this.hasPlayed = false;
    this.switchingSong = true;
    this.needsGesture = false;
    this.lastProgress = { t: opts.startS || 0, at: performance.now() };
    const requestedAtMs = Number.isFinite(opts.requestedAtMs) ? opts.requestedAtMs : performance.now();
    this.setState('loading');
    const v = this.video;
    v.muted = !!opts.idle;
    const hls = new this.Hls({ ...HLS_CONFIG, loader: this.loader, startPosition: opts.startS > 0 ? opts.startS : -1 });
    this.hls = hls;
    const E = this.Hls.Events;
    // The room's choice (or 伴唱 for 公播) as soon as the group's tracks are known, before the
    // default rendition's fragments are fetched.
    const applyRole = () => {
      if (session === this.session) this.applyRoleAtStart(opts.idle ? 'backing' : this.vocal);
    };
    hls.on(E.MANIFEST_PARSED, applyRole);
    hls.on(E.AUDIO_TRACKS_UPDATED, applyRole);
    // Any load that succeeds means the streamer answers again (a song already in the box's
    // HTTP cache may need nothing but one playlist).
    const loaded = () => {
      if (session !== this.session) return;
      this.fatalNetworkErrors = 0;
      this.api.noteSuccess();
      this.setReconnecting(false);
    };
    for (const ev of [E.MANIFEST_LOADED, E.LEVEL_LOADED, E.AUDIO_TRACK_LOADED, E.FRAG_LOADED]) hls.on(ev, loaded);
    hls.on(E.FRAG_BUFFERED, (_e, data) => {
      if (session === this.session) this.onFragBuffered(data);
    });
    hls.on(E.AUDIO_TRACK_SWITCHED, (_e, data) => {
      if (session !== this.session) return;
      const p = this.pendingToggle;
      if (p && data && data.id === p.index && p.switchedMs === undefined) p.switchedMs = performance.now() - p.pressedAtMs;
    });
    hls.on(E.ERROR, (_e, data) => {
      if (session === this.session) this.onError(data);
    });
    // First frame: the first video frame presented after this load.
    const firstFrame = () => {
      if (session !== this.session) return;
      const ms = performance.now() - requestedAtMs;
      this.switchingSong = false;
      if (!opts.recovery) {
        this.ttff.push({ songId: song.id, ms: Math.round(ms), idle: !!opts.idle, reason: opts.reason || '' });
        if (this.ttff.length > SAMPLES_MAX) this.ttff.shift();
      }
      this.emit('first-frame', { ms });
    };
    if (typeof v.requestVideoFrameCallback === 'function') v.requestVideoFrameCallback(firstFrame);
    else v.addEventListener('loadeddata', firstFrame, { once: true });
    hls.attachMedia(v);
    hls.loadSource(this.api.masterUrl(song.id));
    this.tryPlay();
  }

  tryPlay() {
    const p = this.video.play();
    if (p && typeof p.catch === 'function') {
      p.catch((error) => {
        if (error && error.name === 'NotAllowedError') {
          // Autoplay refused (a desktop browser, not the set-top box): wait for a key or a tap.
          this.needsGesture = true;
          this.emit('needs-gesture');
        }
        // AbortError: a new load replaced this one; nothing to do.
      });
    }
  }

  /** After a key press or a tap, when autoplay had been refused. */
  resumeAfterGesture() {
    if (!this.needsGesture) return;
    this.needsGesture = false;
    this.tryPlay();
  }

  teardown() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.pendingToggle = null;
    if (this.hls) {
      try {
        this.hls.destroy();
      } catch (error) {
        console.warn('hls destroy failed', error);
      }
      this.hls = null;
    }
  }

  /** Stops everything (the screensaver takes over). */
  stop() {
    this.teardown();
    this.song = null;
    this.session += 1;
    this.video.removeAttribute('src');
    try {
      this.video.load();
    } catch {
      /* nothing loaded */
    }
    this.setReconnecting(false);
    this.setState('stopped');
  }

  // ---- 原唱 / 伴唱 ----------------------------------------------------------------------

  applyRoleAtStart(role) {
    const hls = this.hls;
    if (!hls || this.pendingToggle) return;
    const index = trackIndexForRole(hls.audioTracks, role);
    if (index >= 0 && index !== hls.audioTrack) hls.audioTrack = index;
  }

  /** Toggles 原唱/伴唱; pressedAtMs is the key press (performance.now()). */
  toggleVocal(pressedAtMs = performance.now()) {
    return this.setVocal(this.vocal === 'vocal' ? 'backing' : 'vocal', pressedAtMs);
  }

  setVocal(role, pressedAtMs = performance.now()) {
    this.vocal = role;
    this.emit('vocal', { vocal: role });
    const hls = this.hls;
    if (!hls || !this.song || this.opts.idle) return true;
    const tracks = hls.audioTracks || [];
    if (tracks.length === 0) return true; // not parsed yet: MANIFEST_PARSED applies the choice
    const index = trackIndexForRole(tracks, role);
    if (index < 0) {
      this.emit('message', { zh: '这首歌没有' + (role === 'backing' ? '伴唱' : '原唱'), en: `This song has no ${role} track` });
      return false;
    }
    if (index === hls.audioTrack && (this.audioSwitch !== 'next' || hls.nextAudioTrack === index || hls.nextAudioTrack === -1)) {
      this.pendingToggle = null;
      return true;
    }
    this.pendingToggle = { role, index, pressedAtMs, method: this.audioSwitch, position: this.video.currentTime };
    if (this.audioSwitch === 'next') hls.nextAudioTrack = index;
    else hls.audioTrack = index;
    return true;
  }

  /**
   * The new rendition counts as audible when a fragment of it is in the SourceBuffer over the
   * playhead (what reaches the speakers after that is Chrome's audio pipeline, which the test
   * measures with an analyser).
   */
  onFragBuffered(data) {
    const p = this.pendingToggle;
    const frag = data && data.frag;
    if (!p || !frag || frag.type !== 'audio' || frag.level !== p.index) return;
    const t = this.video.currentTime;
    if (frag.start > t + 0.5 || frag.start + frag.duration < t) return;
    const ms = performance.now() - p.pressedAtMs;
    this.pendingToggle = null;
    this.toggleLatencyMs.push(Math.round(ms * 10) / 10);
    this.toggles.push({ role: p.role, method: p.method, bufferedMs: Math.round(ms * 10) / 10, switchedEventMs: p.switchedMs, at: t });
    if (this.toggleLatencyMs.length > SAMPLES_MAX) this.toggleLatencyMs.shift();
    if (this.toggles.length > SAMPLES_MAX) this.toggles.shift();
    this.emit('vocal-audible', { role: p.role, ms });
  }

  // ---- transport ------------------------------------------------------------------------

  togglePause() {
    const v = this.video;
    if (!this.song) return;
    if (v.paused) {
      this.tryPlay();
    } else {
      v.pause();
    }
  }

  replay() {
    if (!this.song) return;
    this.video.currentTime = 0;
    this.tryPlay();
  }

  setVolume(volume) {
    this.video.volume = Math.min(1, Math.max(0, volume));
  }

  // ---- errors and recovery --------------------------------------------------------------

  backoffMs(n) {
    const base = Math.min(RETRY_MAX_DELAY_MS, RETRY_BASE_DELAY_MS * 2 ** Math.max(0, n - 1));
    return base * (0.8 + Math.random() * 0.4);
  }

  onError(data) {
    console.warn(`hls error ${data.type}/${data.details} fatal=${data.fatal} code=${data.response && data.response.code}`);
    const Hls = this.Hls;
    const { ErrorTypes, ErrorDetails } = Hls;
    const isNetwork = data.type === ErrorTypes.NETWORK_ERROR;
    if (isNetwork) {
      this.setReconnecting(true);
      // Each failed attempt counts against the streamer; a failover moves the next retry.
      this.api.noteFailure();
    }
    if (!data.fatal) return;
    const code = data.response && typeof data.response.code === 'number' ? data.response.code : 0;
    if (isNetwork && (data.details === ErrorDetails.MANIFEST_LOAD_ERROR || data.details === ErrorDetails.LEVEL_LOAD_ERROR) && code >= 400 && code < 500 && code !== 408 && code !== 429) {
      // The streamer answered that this song is not there: nothing to wait for.
      this.setReconnecting(false);
      console.info(`unplayable: ${this.song && this.song.id} status=${code}`);
      this.emit('unplayable', { song: this.song, status: code });
      return;
    }
    if (isNetwork) {
      this.fatalNetworkErrors += 1;
      const delay = this.backoffMs(this.fatalNetworkErrors);
      const session = this.session;
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        if (session !== this.session) return;
        const hls = this.hls;
        if (hls && hls.levels && hls.levels.length > 0) hls.startLoad(this.resumePosition());
        else this.rebuild();
      }, delay);
      return;
    }
    if (data.type === ErrorTypes.MEDIA_ERROR) {
      const now = performance.now();
      this.mediaErrors = this.mediaErrors.filter((t) => now - t < 60_000);
      this.mediaErrors.push(now);
      if (this.mediaErrors.length > MEDIA_ERRORS_BEFORE_REBUILD) {
        this.mediaErrors = [];
        this.rebuild();
        return;
      }
      const recent = this.mediaErrors.length > 1 && now - this.mediaErrors[this.mediaErrors.length - 2] < MEDIA_ERROR_WINDOW_MS;
      if (recent) this.hls.swapAudioCodec();
      this.hls.recoverMediaError();
      return;
    }
    // Anything else (a muxing or internal error): a fresh instance from where we were.
    this.fatalNetworkErrors += 1;
    const session = this.session;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (session === this.session) this.rebuild();
    }, this.backoffMs(this.fatalNetworkErrors));
  }

  resumePosition() {
    const t = this.video.currentTime;
    return Number.isFinite(t) && t > 0 ? t : this.opts.startS || 0;
  }

  /** A new hls.js instance at the current position, same song and options. */
  rebuild() {
    if (!this.song) return;
    const failures = this.fatalNetworkErrors;
    const wasPaused = this.video.paused && this.hasPlayed;
    this.load(this.song, { ...this.opts, startS: this.resumePosition(), recovery: true, requestedAtMs: performance.now() });
    this.fatalNetworkErrors = failures;
    if (wasPaused) this.video.pause();
  }

  /** Watchdog: playback that should advance but has not for STUCK_AFTER_MS gets a rebuild. */
  checkProgress() {
    const v = this.video;
    const now = performance.now();
    if (!this.song || v.paused || this.needsGesture) {
      this.lastProgress = { t: v.currentTime, at: now };
      return;
    }
    if (v.currentTime !== this.lastProgress.t) {
      this.lastProgress = { t: v.currentTime, at: now };
      return;
    }
    // At the very end with nothing more to play: some streams never fire 'ended'.
    if (Number.isFinite(v.duration) && v.duration > 0 && v.currentTime >= v.duration - 0.5 && now - this.lastProgress.at > 3000) {
      this.lastProgress = { t: v.currentTime, at: now };
      console.info(`watchdog ended: ${this.song.id} t=${v.currentTime} d=${v.duration}`);
      this.emit('ended', { song: this.song });
      return;
    }
    if (now - this.lastProgress.at > STUCK_AFTER_MS) {
      this.lastProgress = { t: v.currentTime, at: now };
      this.setReconnecting(true);
      this.api.noteFailure();
      this.rebuild();
    }
  }
}
