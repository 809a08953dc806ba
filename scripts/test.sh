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

# The compose demo, then the stack on a one-node Swarm, on a real Docker
# engine of the test's own, started once for both and stopped at the end
# (each skipped, with the reason, where no engine can be started).
export BULLETIN_DOCKER_DIR=${BULLETIN_DOCKER_DIR:-/tmp/bulletin-docker}
trap 'bash scripts/docker/engine.sh stop "$BULLETIN_DOCKER_DIR"' EXIT
KEEP_ENGINE=1 bash test/docker/compose.sh
KEEP_ENGINE=1 bash test/docker/swarm.sh
