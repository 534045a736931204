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
# Heavy (ingests the 4-minute 45 Mbit/s source, copies several GB, 20 rooms): runs last.
node dist/bench/repair.js
