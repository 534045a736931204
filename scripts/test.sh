#!/usr/bin/env bash
# `npm test`: system packages, build, then every suite with node's test runner. Test files run
# one at a time: the cluster suites start real processes on loopback and measure nothing, but
# two of them at once on 2 cores would only make each slower.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
npx tsc -p tsconfig.json
files=$(ls dist/test/*.test.js)
exec node --test --test-concurrency=1 --test-reporter=spec --test-timeout=600000 $files
