#!/usr/bin/env bash
# Install what running needs (npm packages, the build: no root, none of the
# tests' Debian packages), then run the whole topology on this machine
# (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --run
exec node bin/bulletin.js up "$@"
