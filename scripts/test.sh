#!/usr/bin/env bash
# The whole test suite: install what it needs, typecheck, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc --noEmit
if [ $# -gt 0 ]; then
  exec npx vitest run "$@"
fi
# The simulator's property runs first, on their own (both cores: 300
# schedules in about a minute), then everything else.
npx vitest run test/sim
npx vitest run --exclude 'test/sim/**'

# The compose demo on a real Docker engine of the test's own (skipped, with
# the reason, where none can be started).
bash test/docker/compose.sh
