#!/usr/bin/env node
// The `ktv` command. The TypeScript is compiled to dist/ by `npm ci` (prepare) and `npm start`.
// Disk calls run on libuv's thread pool (4 threads by default); a few hung disks could take
// every thread and stall the healthy ones. Set before anything touches the pool.
process.env.UV_THREADPOOL_SIZE ??= '32';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const main = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (!existsSync(main)) {
  process.stderr.write('ktv: not built yet; run `npm run build` (npm ci does it too)\n');
  process.exit(1);
}
await import(main);
