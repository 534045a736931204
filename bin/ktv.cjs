#!/usr/bin/env node
// The `ktv` command. The TypeScript is compiled to dist/ by `npm ci` (prepare) and `npm start`.
//
// CommonJS on purpose: disk calls run on libuv's thread pool (4 threads by default) and a few
// hung disks could take every thread and stall the healthy ones, so the pool must be sized
// before it starts. An ES module entry point is read through the pool by the ESM loader, which
// starts it with the default size before the first line runs; this file is loaded synchronously.
'use strict';
process.env.UV_THREADPOOL_SIZE ??= '32';
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');
const main = join(__dirname, '..', 'dist', 'cli', 'main.js');
// Profiling: KTV_CPU_PROF_DIR=DIR writes DIR/<role>-<pid>.cpuprofile when the process exits
// (Chrome DevTools or speedscope read it). Off unless set; costs nothing then.
if (process.env.KTV_CPU_PROF_DIR) {
  const inspector = require('node:inspector');
  const { writeFileSync, mkdirSync } = require('node:fs');
  const session = new inspector.Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.start');
  process.on('exit', () => {
    // A same-thread session answers synchronously, so this runs inside the exit handler.
    session.post('Profiler.stop', (error, result) => {
      if (error) return;
      const dir = process.env.KTV_CPU_PROF_DIR;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${process.argv[2] || 'ktv'}-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
if (!existsSync(main)) {
  process.stderr.write('ktv: not built yet; run `npm run build` (npm ci does it too)\n');
  process.exit(1);
}
import(pathToFileURL(main).href).catch((error) => {
  process.stderr.write(`ktv: ${error && error.stack ? error.stack : String(error)}\n`);
  process.exit(1);
});
