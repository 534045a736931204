#!/usr/bin/env bash
# `npm run bench`: builds, then runs every benchmark; each prints numbers and writes JSON under
# bench-results/. Benchmarks never run inside `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json
node dist/bench/storage-read.js "$@"
node dist/bench/tracker-index.js
node dist/bench/player.js
node dist/bench/failover.js
# Heavy (ingests the 4-minute 45 Mbit/s source, copies several GB, 20 rooms).
node dist/bench/repair.js
# Heaviest, last: our streamer against nginx, max stall-free 45 Mbit/s streams each (builds the
# 10-song library into .cache/ once: ~6 min, 16 GB; then ~10 min per side).
node dist/bench/stream.js
