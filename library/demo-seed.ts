// The demo library `ktv up` seeds on its first start: short generated songs (a title card over a
// moving picture, a steady tone per audio role so anyone can hear 原唱 from 伴唱), Chinese and
// English titles, one of them a legacy left/right MPEG-2 source, all through the real ingest path.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeDemoSong, type DemoSongOptions } from './media/demo.js';
import { ingestSong, toIngestError, type IngestContext, type IngestResult } from './ingest/ingest.js';

interface DemoEntry {
  title: string;
  caption: string;
  artist: string;
  language: string;
  genre: string;
  vocalHz: number;
  backingHz: number;
  layout: DemoSongOptions['layout'];
}

/** Tones are distinct per song and per role (vocal higher than backing), none a harmonic of another. */
export const DEMO_SONGS: DemoEntry[] = [
  { title: '月亮代表我的心', caption: 'Yue Liang Dai Biao Wo De Xin', artist: '邓丽君', language: 'zh', genre: '经典', vocalHz: 440, backingHz: 330, layout: 'two-streams' },
  { title: 'Let It Be', caption: 'Let It Be', artist: 'The Beatles', language: 'en', genre: 'pop', vocalHz: 523, backingHz: 349, layout: 'two-streams' },
  { title: '朋友', caption: 'Peng You', artist: '周华健', language: 'zh', genre: '流行', vocalHz: 587, backingHz: 392, layout: 'legacy-lr' },
  { title: '海阔天空', caption: 'Hai Kuo Tian Kong', artist: 'Beyond', language: 'yue', genre: '摇滚', vocalHz: 659, backingHz: 415, layout: 'two-streams' },
  { title: 'Yesterday', caption: 'Yesterday', artist: 'The Beatles', language: 'en', genre: 'pop', vocalHz: 698, backingHz: 466, layout: 'two-streams' },
  { title: '甜蜜蜜', caption: 'Tian Mi Mi', artist: '邓丽君', language: 'zh', genre: '经典', vocalHz: 784, backingHz: 494, layout: 'legacy-lr' },
];

export interface SeedOptions {
  dataDir: string;
  count: number;
  durationS: number;
  width: number;
  height: number;
  onSong?: (index: number, total: number, title: string, result?: IngestResult, error?: string) => void;
}

/** Seeds once: a marker file under the data dir records that it was done. Returns the ids. */
export async function seedDemoLibrary(ctx: IngestContext, o: SeedOptions): Promise<string[]> {
  const marker = join(o.dataDir, 'demo-seeded.json');
  if (existsSync(marker) || o.count <= 0) return [];
  const sourceDir = join(o.dataDir, 'demo-sources');
  mkdirSync(sourceDir, { recursive: true });
  const ids: string[] = [];
  const songs = DEMO_SONGS.slice(0, Math.min(o.count, DEMO_SONGS.length));
  for (const [i, song] of songs.entries()) {
    const file = join(sourceDir, `demo-${i + 1}.${song.layout === 'legacy-lr' ? 'mpg' : 'mp4'}`);
    try {
      if (!existsSync(file)) {
        await makeDemoSong(file, {
          title: song.title,
          caption: song.caption,
          durationS: o.durationS,
          vocalHz: song.vocalHz,
          backingHz: song.backingHz,
          layout: song.layout,
          width: o.width,
          height: o.height,
          vocalTitle: '原唱 Vocal',
          backingTitle: '伴唱 Backing',
        }, ctx.config.library.media);
      }
      const result = await ingestSong(
        { file, sourceName: `demo-${i + 1}`, title: song.title, artist: song.artist, language: song.language, genre: song.genre, vocalChannel: song.layout === 'legacy-lr' ? 'left' : undefined },
        ctx,
      );
      ids.push(result.id);
      o.onSong?.(i + 1, songs.length, song.title, result);
    } catch (error) {
      o.onSong?.(i + 1, songs.length, song.title, undefined, toIngestError(error).message);
    }
  }
  if (ids.length === songs.length) writeFileSync(marker, JSON.stringify({ at: new Date().toISOString(), ids }, null, 2) + '\n');
  return ids;
}
