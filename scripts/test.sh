#!/usr/bin/env bash
# The whole test suite: install what it needs, typecheck, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc --noEmit
npx vitest run "$@"
