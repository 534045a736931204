// The room's state that must survive a reload or a power cut: the queue (已点), the song being
// sung and where it was, the 原唱/伴唱 choice and the volume. Written to localStorage on every
// change (the position at most every few seconds), read back on start. Pure data + one storage
// object, so the logic is the same in a test page or on the set-top box.
import { toSong } from './format.js';

export const STORAGE_KEY = 'ktv.room.v1';
/** A room's queue is bounded: a stuck remote repeating "add" must not fill the storage. */
export const QUEUE_MAX = 200;
/** Position writes are throttled (a write every timeupdate would wear a flash-backed storage). */
export const POSITION_SAVE_INTERVAL_MS = 3000;

export class RoomStore {
  /** @param {Storage | null} storage localStorage, or null when the browser refuses it */
  constructor(storage) {
    this.storage = storage;
    this.queue = [];
    this.current = null;
    this.positionS = 0;
    this.vocal = 'vocal';
    this.volume = 1;
    this.listeners = new Set();
    this.lastPositionSaveMs = 0;
    this.seq = 0;
    this.load();
  }

  onChange(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  load() {
    let raw = null;
    try {
      raw = this.storage ? this.storage.getItem(STORAGE_KEY) : null;
    } catch {
      raw = null;
    }
    if (!raw) return;
    let data;
    try {
      data = JSON.parse(raw);
    } catch {
      return; // a torn write after a power cut: start empty rather than fail
    }
    if (!data || typeof data !== 'object') return;
    if (Array.isArray(data.queue)) {
      for (const row of data.queue.slice(0, QUEUE_MAX)) {
        const e = this.entry(row);
        if (e) this.queue.push(e);
      }
    }
    this.current = data.current ? this.entry(data.current) : null;
    this.positionS = Number.isFinite(data.positionS) && data.positionS > 0 ? data.positionS : 0;
    if (data.vocal === 'vocal' || data.vocal === 'backing') this.vocal = data.vocal;
    if (Number.isFinite(data.volume)) this.volume = Math.min(1, Math.max(0, data.volume));
  }

  /** A queue entry: the song plus an id of its own (the same song may be queued twice). */
  entry(row) {
    const song = toSong(row);
    if (!song) return null;
    const entryId = typeof row.entryId === 'string' && /^[a-z0-9-]{1,40}$/.test(row.entryId) ? row.entryId : this.newEntryId();
    return { ...song, entryId };
  }

  newEntryId() {
    this.seq += 1;
    return `e${Date.now().toString(36)}-${this.seq.toString(36)}`;
  }

  save() {
    const data = { queue: this.queue, current: this.current, positionS: this.positionS, vocal: this.vocal, volume: this.volume, savedAt: Date.now() };
    try {
      if (this.storage) this.storage.setItem(STORAGE_KEY, JSON.stringify(data));
    } catch {
      /* storage full or refused: the room keeps working from memory */
    }
  }

  changed(what) {
    this.save();
    for (const fn of this.listeners) {
      try {
        fn(what);
      } catch (error) {
        console.error('store listener failed', error);
      }
    }
  }

  /** 点歌: to the end of the queue. Returns the entry, or null when the queue is full. */
  add(song) {
    if (this.queue.length >= QUEUE_MAX) return null;
    const e = this.entry(song);
    if (!e) return null;
    this.queue.push(e);
    this.changed('queue');
    return e;
  }

  /** 优先 for a song not yet queued: straight to the top. */
  addTop(song) {
    if (this.queue.length >= QUEUE_MAX) return null;
    const e = this.entry(song);
    if (!e) return null;
    this.queue.unshift(e);
    this.changed('queue');
    return e;
  }

  /** 优先 for a queued entry. */
  moveTop(entryId) {
    const i = this.queue.findIndex((e) => e.entryId === entryId);
    if (i <= 0) return i === 0;
    const [e] = this.queue.splice(i, 1);
    this.queue.unshift(e);
    this.changed('queue');
    return true;
  }

  remove(entryId) {
    const i = this.queue.findIndex((e) => e.entryId === entryId);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    this.changed('queue');
    return true;
  }

  /** Takes the next entry off the queue and makes it current (null: the queue is empty). */
  advance() {
    const next = this.queue.shift() ?? null;
    this.current = next;
    this.positionS = 0;
    this.changed('current');
    return next;
  }

  clearCurrent() {
    if (!this.current && this.positionS === 0) return;
    this.current = null;
    this.positionS = 0;
    this.changed('current');
  }

  setVocal(role) {
    if (this.vocal === role) return;
    this.vocal = role;
    this.changed('vocal');
  }

  setVolume(v) {
    this.volume = Math.min(1, Math.max(0, Math.round(v * 100) / 100));
    this.changed('volume');
  }

  /** The playhead of the current song; written at most every POSITION_SAVE_INTERVAL_MS. */
  notePosition(seconds, force = false) {
    if (!this.current || !Number.isFinite(seconds)) return;
    this.positionS = seconds;
    const now = Date.now();
    if (force || now - this.lastPositionSaveMs >= POSITION_SAVE_INTERVAL_MS) {
      this.lastPositionSaveMs = now;
      this.save();
    }
  }
}
