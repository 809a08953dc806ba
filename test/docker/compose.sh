#!/usr/bin/env bash
# The compose demo on a real Docker engine, as a user runs it: an engine of
# the test's own (scripts/docker/engine.sh), the base image (or its stand-in,
# scripts/docker/base-image.sh), `docker build`, `docker compose up`, then
# from containers on the compose network: the standard-protocol Python client,
# bots posting, the coordinator killed and replaced, the killed server back,
# every acknowledged post on every server; `docker compose down -v`.
# Prints what it checked and how long each phase took. Exit 0 when it all
# held; skipped (exit 0, with the reason) only where no engine can be started.
#   bash test/docker/compose.sh            (KEEP_ENGINE=1: leave the engine running)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
project=bulletin-ci
network=${project}_default
label=compose
# shellcheck source=lib.sh
source "$root/test/docker/lib.sh"
compose() { docker-compose -p "$project" -f "$root/compose.yaml" "$@"; }
fail() {
  echo "compose: FAILED: $*" >&2
  echo "--- docker-compose ps" >&2
  compose ps >&2 || true
  echo "--- last log lines" >&2
  compose logs --no-color --tail 15 >&2 || true
  exit 1
}
cleanup() {
  rm -rf "$work"
  docker ps -aq --filter label=bulletin-ci-run | xargs -r /usr/bin/docker rm -f >/dev/null 2>&1 || true
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  [ "${KEEP_ENGINE:-0}" = 1 ] || bash "$root/scripts/docker/engine.sh" stop "$engine_dir"
}

start_engine_or_skip
trap cleanup EXIT
phase "engine started"

bash scripts/docker/base-image.sh node:20-bookworm-slim
phase "base image"
docker build -q -t bulletin:latest . >/dev/null || fail "docker build"
size=$(docker image inspect bulletin:latest --format '{{.Size}}' | awk '{ printf "%.0f MB", $1 / 1e6 }')
phase "image bulletin:latest built ($size)"
docker build -q -t bulletin-tester:latest -f test/docker/tester.Dockerfile test/docker >/dev/null || fail "docker build (tester)"
phase "tester image (Debian's python3-zmq, python3-msgpack)"

# What an interrupted run left: its probes first (they hold the key volume), then the project.
docker ps -aq --filter label=bulletin-ci-run | xargs -r /usr/bin/docker rm -f >/dev/null
compose down -v --remove-orphans >/dev/null 2>&1 || true
compose up -d >/dev/null 2>&1 || fail "docker compose up"
services="broker proxy reference server-1 server-2 server-3 bot dashboard"
containers() { compose ps -q "$@"; }
healthy=0
for _ in $(seq 1 120); do
  states=$(for id in $(containers); do docker inspect --format '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id"; done)
  healthy=$(echo "$states" | grep -c ' healthy$' || true)
  [ "$healthy" -ge 9 ] && break
  sleep 2
done
[ "$healthy" -ge 9 ] || fail "only $healthy of 9 containers healthy: $states"
phase "docker compose up: 9 containers healthy"

# Server names are the replicas' host names, stable across restarts.
names=$(for s in server-1 server-2 server-3; do docker inspect --format '{{.Config.Hostname}}' "$(containers $s)"; done | tr '\n' ' ')
[ "$names" = "server-1 server-2 server-3 " ] || fail "server host names: $names"

# The cluster as the reference lists it, each server's coordinator and op log (test/support/probe.ts, in the bulletin image).
probe() {
  docker run --rm --label bulletin-ci-run --network "$network" -v "${project}_cluster-key:/keys:ro" -v "$root/test/support:/app/test/support:ro" \
    --entrypoint sh bulletin:latest -c 'BULLETIN_CLUSTER_KEY="$(cat /keys/cluster.key)" exec node --import tsx test/support/probe.ts "$0"' "$1"
}

tester python3 /t/interop/standard_client.py tcp://broker:5555 tcp://proxy:5558 "ci$(date +%s)" >$work/py.log 2>&1 || fail "standard client: $(grep '"ok": false' $work/py.log | head -3)"
phase "standard-protocol Python client: $(grep -c '"ok": true' $work/py.log) checks passed"

# Each server's Prometheus endpoint, from another container on the compose network.
tester python3 -c "
import sys, urllib.request
for s in ('server-1', 'server-2', 'server-3'):
    t = urllib.request.urlopen('http://%s:9464/metrics' % s, timeout=5).read().decode()
    if 'bulletin_requests_total' not in t or 'bulletin_is_coordinator' not in t: sys.exit('no metrics from http://%s:9464/metrics' % s)
" || fail "metrics: not every server answers on :9464/metrics"
phase "metrics: http://server-N:9464/metrics answers on all 3"

posts() { probe '{"reference":"tcp://reference:5559","ops":true}' | json "d.servers.map((s) => s.name + ':' + (s.ops ?? []).filter((o) => o.kind === 'publish' && /^bot-/.test(o.user ?? '')).length).join(' ')"; }
first=$(posts)
sleep 5
second=$(posts)
bot_posts() { echo "$1" | tr ' ' '\n' | cut -d: -f2 | sort -n | head -1; }
[ "$(bot_posts "$second")" -gt "$(bot_posts "$first")" ] || fail "bots are not posting: $first, then $second"
phase "bots posting (bot posts per server: $second)"

coordinator() { probe '{"reference":"tcp://reference:5559"}' | json "[...new Set(d.servers.filter((s) => s.coordinator !== undefined).map((s) => s.coordinator))].join(',')"; }
before=$(coordinator)
case "$before" in server-[123]) ;; *) fail "no agreed coordinator before the kill: '$before'" ;; esac
tester python3 /t/docker/posts.py tcp://broker:5555 ci-before ci-room "before kill" 40 >$work/posts1.json || fail "posts before the kill"
kill_iso=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
compose kill "$before" >/dev/null 2>&1
# Posts while the coordinator is gone (a request caught by the dying server times out and is sent again).
tester python3 /t/docker/posts.py tcp://broker:5555 ci-during ci-room "during failover" 40 90 >$work/posts2.json &
posting=$!
after=""
for _ in $(seq 1 60); do
  after=$(coordinator 2>/dev/null || true)
  case "$after" in server-[123]) [ "$after" != "$before" ] && break ;; esac
  sleep 1
done
case "$after" in server-[123]) [ "$after" != "$before" ] || fail "the killed $before is still coordinator" ;; *) fail "after killing $before the servers follow '$after'" ;; esac
wait $posting || fail "posts during the failover"
# From the kill to the new coordinator's own log line announcing itself.
# (Through a file: `docker logs | grep -m1` ends docker logs with SIGPIPE, which pipefail makes the script's exit status, 141.)
docker logs -t --since "$kill_iso" "$(containers "$after")" >"$work/after.log" 2>&1 || true
took=$({ grep -m1 "coordinator is $after (this server)" "$work/after.log" || true; } | KILL="$kill_iso" node -e "const l = require('fs').readFileSync(0, 'utf8'); console.log(l ? Date.parse(l.split(' ')[0]) - Date.parse(process.env.KILL) + ' ms' : '(no log line)')")
phase "killed $before (coordinator): $after took over after $took"

compose start "$before" >/dev/null 2>&1
back=""
for _ in $(seq 1 60); do
  back=$(coordinator 2>/dev/null || true)
  [ "$(docker inspect --format '{{.State.Health.Status}}' "$(containers "$before")")" = healthy ] && [ "$(probe '{"reference":"tcp://reference:5559"}' | json "d.servers.filter((s) => s.coordinator !== undefined).length")" = 3 ] && case "$back" in server-[123]) true ;; *) false ;; esac && break
  sleep 1
done
case "$back" in server-[123]) ;; *) fail "$before came back but the servers follow '$back'" ;; esac
phase "docker compose start $before: healthy; all 3 follow $back"

acked=$(acked_in "$work/posts1.json" "$work/posts2.json")
n_acked=$(echo "$acked" | json "d.length")
[ "$n_acked" -ge 60 ] || fail "only $n_acked of 80 posts acknowledged"
missing=""
for _ in $(seq 1 30); do
  listed=$(probe '{"reference":"tcp://reference:5559","ops":true}')
  missing=$(echo "$listed" | json "d.servers.length < 3 ? 'only ' + d.servers.length + ' servers listed' : ''")
  [ -n "$missing" ] || missing=$(echo "$listed" | lacking "$acked")
  [ -z "$missing" ] && break
  sleep 1
done
[ -z "$missing" ] || fail "acknowledged posts missing: $missing"
phase "all $n_acked acknowledged posts on all 3 servers"

compose down -v >/dev/null 2>&1 || fail "docker compose down -v"
phase "docker compose down -v"
echo "compose: all held in $(($(date +%s) - t0)) s"
