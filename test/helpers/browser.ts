// Real Chromium for player tests: Debian's /usr/bin/chromium driven by playwright-core (which
// never downloads a browser), a fresh profile per launch, autoplay allowed as on a set-top box.
// `close()` is safe to call twice and after a failed launch; tests call it in `after`.
import { existsSync, rmSync } from 'node:fs';
import { chromium, type BrowserContext, type ConsoleMessage, type Page } from 'playwright-core';
import { tempDir } from './procs.js';

export const CHROMIUM_PATH = process.env.KTV_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

export interface BrowserSession {
  context: BrowserContext;
  page: Page;
  /** Console lines and page errors seen so far (for failure messages). */
  logs: string[];
  close(): Promise<void>;
}

export interface LaunchOptions {
  /** Viewport of the page (CSS pixels). */
  width?: number;
  height?: number;
  /** Deadline of the launch itself. */
  timeoutMs?: number;
}

/** Launches Chromium with a fresh user-data dir (a persistent context in a temp dir) and one page. */
export async function launchBrowser(options: LaunchOptions = {}): Promise<BrowserSession> {
  if (!existsSync(CHROMIUM_PATH)) throw new Error(`${CHROMIUM_PATH} is missing (scripts/setup-system.sh installs Debian's chromium)`);
  const profileDir = tempDir('chromium-profile');
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: options.width ?? 1280, height: options.height ?? 720 },
      timeout: options.timeoutMs ?? 60_000,
    });
  } catch (error) {
    rmSync(profileDir, { recursive: true, force: true });
    throw error;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  const logs: string[] = [];
  const keep = (line: string): void => {
    logs.push(line);
    if (logs.length > 500) logs.shift();
  };
  page.on('console', (m: ConsoleMessage) => keep(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e: Error) => keep(`[pageerror] ${e.message}`));
  let closed = false;
  return {
    context,
    page,
    logs,
    async close() {
      if (closed) return;
      closed = true;
      // close() can hang on a wedged renderer; playwright-core kills the browser process it started
      // when this process exits, so a deadline is enough here.
      await Promise.race([context.close().catch(() => undefined), new Promise((r) => setTimeout(r, 10_000))]);
      rmSync(profileDir, { recursive: true, force: true });
    },
  };
}

// ---- hearing the room: a Web Audio analyser on the player's <video> ------------------------

/** Installs an analyser on the <video> (once per page) and returns the dominant frequency now. */
export async function dominantHz(page: Page): Promise<number> {
  return page.evaluate(() => {
    type Probe = { dominant(): number };
    const w = window as unknown as { __probe?: Probe; __ktv: { video: HTMLVideoElement } };
    if (!w.__probe) {
      const ctx = new AudioContext();
      const source = ctx.createMediaElementSource(w.__ktv.video);
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 2048;
      analyser.smoothingTimeConstant = 0;
      source.connect(analyser);
      analyser.connect(ctx.destination);
      const bins = new Float32Array(analyser.frequencyBinCount);
      w.__probe = {
        dominant() {
          analyser.getFloatFrequencyData(bins);
          let best = 1;
          for (let i = 2; i < bins.length; i++) if (bins[i]! > bins[best]!) best = i;
          return bins[best]! > -90 ? (best * ctx.sampleRate) / analyser.fftSize : 0;
        },
      };
    }
    return w.__probe.dominant();
  });
}

/** Polls the analyser until it hears `hz` (within `toleranceHz`), or throws naming what it hears. */
export async function waitForTone(page: Page, hz: number, what: string, timeoutMs = 30_000, toleranceHz = 30): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 0;
  while (Date.now() < deadline) {
    last = await dominantHz(page);
    if (Math.abs(last - hz) < toleranceHz) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: expected a ${hz} Hz tone, the analyser hears ${last} Hz`);
}
