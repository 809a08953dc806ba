#!/usr/bin/env bash
# Installs everything bulletin and its tests need, on a fresh Debian machine
# with Node 20: npm packages from the lock file, and Debian's python3-zmq and
# python3-msgpack for the independent Python client the tests run. Idempotent:
# a second run installs nothing.
#   bash scripts/setup.sh          everything the tests need (Debian packages as root)
#   bash scripts/setup.sh --run    only what running bulletin needs: npm packages and
#                                  the build (no root, no Debian packages)
set -euo pipefail
cd "$(dirname "$0")/.."
run_only=0
[ "${1:-}" = "--run" ] && run_only=1

# Debian packages the tests use: python3-zmq and python3-msgpack (the
# independent Python client), docker-compose (validates compose.yaml; no
# Docker engine is needed for `docker-compose config`), iproute2 (network
# namespaces for the multi-host tests), chromium (the dashboard's browser test,
# driven by playwright-core, which never downloads a browser of its own), tmux
# (the client's test in a real terminal: test/e2e/client-pty.test.ts).
missing=()
if [ $run_only -eq 0 ]; then
/usr/bin/python3 -c 'import zmq, msgpack' 2>/dev/null || missing+=(python3-zmq python3-msgpack)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages; install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
fi

# npm ci only when node_modules was not installed from this very lock file.
stamp=node_modules/.bulletin-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

# The compiled JavaScript in dist/: what the `bulletin` bin runs (it starts in
# a fraction of tsx's time and memory) and the public export
# `bulletin/machines`. Only when a source is newer than the last build.
node scripts/build.mjs --if-stale
