#!/usr/bin/env bash
# Install, then run the whole topology on this machine (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/bulletin.js up "$@"
