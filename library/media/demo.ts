// Demo/test songs from ffmpeg's lavfi sources: a moving picture with a title card and one steady
// sine tone per audio role, so a test (or a person in a room) can tell 原唱 from 伴唱 by pitch.
// 'two-streams' is the modern layout (MP4, H.264, two titled AAC streams); 'legacy-lr' the old
// one (MPEG-2 + MP2 stereo in .mpg, 原唱 on one channel and 伴唱 on the other).
import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { defaultMediaConfig, type MediaConfig } from './config.js';
import { MediaError } from './errors.js';
import { deadlineMs, inputUrl, runFfmpeg } from './ffmpeg.js';
import type { RunContext } from './proc.js';

export const DEJAVU_FONT = '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf';
/** Fonts that draw Chinese, where Debian/Ubuntu packages put them; none is required. */
export const CJK_FONT_CANDIDATES = [
  '/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc',
  '/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc',
  '/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc',
  '/usr/share/fonts/truetype/wqy/wqy-microhei.ttc',
  '/usr/share/fonts/truetype/arphic/uming.ttc',
  '/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf',
];
/** sine's fixed amplitude is 1/8: −18.06 dBFS peak. */
const SINE_PEAK_DBFS = 20 * Math.log10(1 / 8);
/** Paths that go into a filter graph must not need escaping. */
const FILTER_SAFE_PATH_RE = /^[A-Za-z0-9/._-]+$/;

export interface DemoSongOptions {
  title: string;
  /** Latin text (e.g. pinyin) drawn instead of the title when no installed font can draw it. */
  caption?: string;
  durationS: number;
  vocalHz: number;
  backingHz: number;
  layout: 'two-streams' | 'legacy-lr';
  /** Picture size: 640x360 for fast tests (default), 1920x1080 for benchmarks. */
  width?: number;
  height?: number;
  frameRate?: number;
  /** two-streams: keyframe every N s (default 4 = the segment grid, so the source remuxes). */
  keyframeIntervalS?: number;
  /** legacy-lr: the channel carrying 原唱 (default left). */
  vocalChannel?: 'left' | 'right';
  /** two-streams: stream order (default vocal first). */
  audioOrder?: 'vocal-first' | 'backing-first';
  /** two-streams: stream titles ('' leaves a stream untitled). */
  vocalTitle?: string;
  backingTitle?: string;
  /** two-streams: ISO 639-2 language tag on both audio streams (e.g. 'chi'). */
  audioLanguage?: string;
  /** Peak level of each tone (default −24 dBFS, well below the loudness target). */
  toneLevelDbfs?: number;
  /** two-streams: moov at the front (default false: at the end, as most encoders write it). */
  faststart?: boolean;
  /**
   * two-streams: constant video bit rate (e.g. 45e6 for the product's 45 Mbit/s streams). A test
   * picture compresses to almost nothing, so benchmarks that move real byte volumes set this.
   */
  videoBitsPerS?: number;
}

export interface DemoSong {
  file: string;
  sizeBytes: number;
  layout: DemoSongOptions['layout'];
  /** The text drawn on the title card ('' when no font was available). */
  drawnText: string;
  vocalHz: number;
  backingHz: number;
}

/** Scripts DejaVu Sans covers: Latin, Greek, Cyrillic, general punctuation. */
function dejavuCanDraw(text: string): boolean {
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    const ok = c < 0x250 || (c >= 0x370 && c < 0x530) || (c >= 0x2000 && c < 0x2070) || c === 0x00b7;
    if (!ok) return false;
  }
  return true;
}

/** The title if some installed font draws it; else the caption; else the title's Latin part. */
export function chooseTitleText(title: string, caption: string | undefined, fonts: { dejavu: boolean; cjk?: string }): { text: string; font?: string } {
  if (fonts.dejavu && dejavuCanDraw(title)) return { text: title, font: DEJAVU_FONT };
  if (fonts.cjk) return { text: title, font: fonts.cjk };
  if (!fonts.dejavu) return { text: '' };
  if (caption && dejavuCanDraw(caption)) return { text: caption, font: DEJAVU_FONT };
  const latin = [...title].filter((ch) => dejavuCanDraw(ch)).join('').trim();
  return { text: latin || 'KTV demo', font: DEJAVU_FONT };
}

function checkOptions(o: DemoSongOptions): void {
  const bad = (why: string): never => {
    throw new MediaError('bad-option', `demo song: ${why}`);
  };
  if (!(o.durationS > 0 && o.durationS <= 3600)) bad('durationS must be in (0, 3600]');
  for (const hz of [o.vocalHz, o.backingHz]) if (!(hz >= 20 && hz <= 20_000)) bad('tone frequencies must be 20-20000 Hz');
  const w = o.width ?? 640;
  const h = o.height ?? 360;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w % 2 || h % 2 || w < 64 || h < 64 || w > 4096 || h > 4096) bad('size must be even, 64-4096');
  if (o.frameRate !== undefined && !(o.frameRate > 0 && o.frameRate <= 120)) bad('frameRate must be in (0, 120]');
  if (o.keyframeIntervalS !== undefined && !(o.keyframeIntervalS > 0)) bad('keyframeIntervalS must be positive');
  if (o.audioLanguage !== undefined && !/^[a-z]{3}$/.test(o.audioLanguage)) bad('audioLanguage must be an ISO 639-2 code like chi');
  for (const t of [o.title, o.caption ?? '', o.vocalTitle ?? '', o.backingTitle ?? '']) if (/[\r\n]/.test(t) || t.length > 200) bad('titles must be one line');
}

/** Writes a demo song to `outFile` (overwritten). */
export async function makeDemoSong(outFile: string, options: DemoSongOptions, limits: MediaConfig = defaultMediaConfig, ctx: RunContext = {}): Promise<DemoSong> {
  checkOptions(options);
  const o = options;
  const width = o.width ?? 640;
  const height = o.height ?? 360;
  const frameRate = o.frameRate ?? 25;
  const toneGainDb = (o.toneLevelDbfs ?? -24) - SINE_PEAK_DBFS;
  const d = o.durationS.toFixed(3);
  const file = path.resolve(outFile);

  const cjk = CJK_FONT_CANDIDATES.find((f) => existsSync(f));
  const choice = chooseTitleText(o.title, o.caption, { dejavu: existsSync(DEJAVU_FONT), ...(cjk ? { cjk } : {}) });
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'ktv-demo-'));
  try {
    let video = '[0:v]null[v]';
    if (choice.font && FILTER_SAFE_PATH_RE.test(choice.font) && FILTER_SAFE_PATH_RE.test(tmp)) {
      // Text from a file with expansion off: no escaping of quotes, colons or % in titles.
      const textFile = path.join(tmp, 'title.txt');
      await writeFile(textFile, `${choice.text}\nvocal ${o.vocalHz} Hz / backing ${o.backingHz} Hz`);
      const size = Math.max(12, Math.round(height / 12));
      video = `[0:v]drawtext=fontfile=${choice.font}:textfile=${textFile}:expansion=none:fontsize=${size}:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=${Math.round(size / 3)}:line_spacing=${Math.round(size / 3)}:x=(w-text_w)/2:y=h/8[v]`;
    }
    const tone = (input: number, label: string, toStereo: boolean): string =>
      `[${input}:a]volume=${toneGainDb.toFixed(2)}dB${toStereo ? ',pan=stereo|c0=c0|c1=c0' : ''}[${label}]`;
    const inputs = [
      { source: `testsrc2=size=${width}x${height}:rate=${frameRate}:duration=${d}`, options: ['-f', 'lavfi'] },
      { source: `sine=frequency=${o.vocalHz}:sample_rate=48000:duration=${d}`, options: ['-f', 'lavfi'] },
      { source: `sine=frequency=${o.backingHz}:sample_rate=48000:duration=${d}`, options: ['-f', 'lavfi'] },
    ];
    const graph = [video];
    const out: string[] = ['-map', '[v]'];
    if (o.layout === 'two-streams') {
      graph.push(tone(1, 'voc', true), tone(2, 'bak', true));
      const order = o.audioOrder === 'backing-first' ? (['bak', 'voc'] as const) : (['voc', 'bak'] as const);
      const titles = { voc: o.vocalTitle ?? '原唱 Vocal', bak: o.backingTitle ?? '伴唱 Backing' };
      out.push('-map', `[${order[0]}]`, '-map', `[${order[1]}]`);
      out.push(
        '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'high', '-pix_fmt', 'yuv420p',
        ...(o.videoBitsPerS
          ? ['-b:v', String(o.videoBitsPerS), '-minrate', String(o.videoBitsPerS), '-maxrate', String(o.videoBitsPerS), '-bufsize', String(o.videoBitsPerS), '-x264-params', 'nal-hrd=cbr:force-cfr=1']
          : []),
        '-force_key_frames', `expr:gte(t,n_forced*${o.keyframeIntervalS ?? 4})`,
        '-c:a', 'aac', '-b:a', '128k', '-ar', '48000',
        '-metadata', `title=${o.title}`,
      );
      order.forEach((label, i) => {
        // MP4 keeps a track's name in its handler name (ffmpeg's mp4 muxer drops `title`).
        if (titles[label]) out.push(`-metadata:s:a:${i}`, `title=${titles[label]}`, `-metadata:s:a:${i}`, `handler_name=${titles[label]}`);
        if (o.audioLanguage) out.push(`-metadata:s:a:${i}`, `language=${o.audioLanguage}`);
      });
      if (o.faststart) out.push('-movflags', '+faststart');
      out.push('-f', 'mp4');
    } else {
      graph.push(tone(1, 'voc', false), tone(2, 'bak', false));
      const [fl, fr] = (o.vocalChannel ?? 'left') === 'left' ? ['voc', 'bak'] : ['bak', 'voc'];
      graph.push(`[${fl}][${fr}]join=inputs=2:channel_layout=stereo:map=0.0-FL|1.0-FR[a]`);
      out.push('-map', '[a]', '-c:v', 'mpeg2video', '-q:v', '4', '-g', '15', '-c:a', 'mp2', '-b:a', '192k', '-ar', '48000', '-f', 'mpeg');
    }
    await runFfmpeg(
      {
        label: 'demo song',
        inputs,
        complexFilter: graph.join(';'),
        outputOptions: out,
        output: inputUrl(file),
        timeoutMs: deadlineMs(limits, o.durationS, limits.packageTimeoutMsPerMediaS),
      },
      limits,
      ctx,
    );
  } catch (err) {
    await rm(file, { force: true });
    throw err;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return { file, sizeBytes: (await stat(file)).size, layout: o.layout, drawnText: choice.text, vocalHz: o.vocalHz, backingHz: o.backingHz };
}
