#!/usr/bin/env bash
# stack.yaml on Docker Swarm (one node: the test's own engine, as
# test/docker/compose.sh leaves it, or started here): `docker swarm init`, the
# cluster's key as a Swarm secret, `docker stack deploy`; then from a
# container on the stack's overlay network: the servers elect, the
# standard-protocol Python client passes, `docker service scale` of the
# servers 3 -> 5 -> 3 (every server listed and following one coordinator,
# every acknowledged post on every live server), `docker stack rm`.
# Prints what it checked and how long each phase took; skipped (exit 0, with
# the reason) only where no engine can be started.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
stack=bulletin
network=${stack}_default
label=swarm
# shellcheck source=lib.sh
source "$root/test/docker/lib.sh"
fail() {
  echo "swarm: FAILED: $*" >&2
  docker service ls >&2 || true
  for s in $(docker service ls -q 2>/dev/null); do docker service ps --no-trunc --format '{{.Name}} {{.CurrentState}} {{.Error}}' "$s" 2>/dev/null | head -4 >&2; done
  docker service logs --tail 10 "${stack}_server" >&2 2>/dev/null || true
  exit 1
}
# The stack, its containers and its volumes gone (what an earlier run left, too).
clean_stack() {
  docker ps -aq --filter label=bulletin-ci-run | xargs -r /usr/bin/docker rm -f >/dev/null 2>&1 || true
  docker stack rm "$stack" >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do
    [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$stack")" ] && break
    sleep 1
  done
  docker ps -aq --filter "label=com.docker.stack.namespace=$stack" | xargs -r /usr/bin/docker rm -f >/dev/null 2>&1 || true
  docker volume ls -q --filter "label=com.docker.stack.namespace=$stack" | xargs -r /usr/bin/docker volume rm >/dev/null 2>&1 || true
}
cleanup() {
  rm -rf "$work"
  clean_stack
  docker swarm leave --force >/dev/null 2>&1 || true
  [ "${KEEP_ENGINE:-0}" = 1 ] || bash "$root/scripts/docker/engine.sh" stop "$engine_dir"
}

start_engine_or_skip
trap cleanup EXIT
bash scripts/docker/base-image.sh node:20-bookworm-slim >/dev/null
docker build -q -t bulletin:latest . >/dev/null || fail "docker build"
docker build -q -t bulletin-tester:latest -f test/docker/tester.Dockerfile test/docker >/dev/null || fail "docker build (tester)"
phase "engine and images"

clean_stack
docker swarm leave --force >/dev/null 2>&1 || true
addr=$(ip -4 -o addr show scope global | awk '{ split($4, a, "/"); print a[1]; exit }')
docker swarm init --advertise-addr "${addr:-127.0.0.1}" >/dev/null || fail "docker swarm init"
docker run --rm bulletin:latest keygen >"$work/key" && docker secret create bulletin-cluster-key "$work/key" >/dev/null || fail "the cluster key as a secret"
docker stack deploy -c stack.yaml "$stack" >"$work/deploy.log" 2>&1 || fail "docker stack deploy: $(cat "$work/deploy.log")"
phase "docker swarm init, secret, docker stack deploy"

# The probe (test/support/probe.ts, in the bulletin image) with the key this test made (a secret cannot be read back).
probe() {
  docker run --rm --label bulletin-ci-run --network "$network" -e BULLETIN_CLUSTER_KEY="$(cat "$work/key")" -v "$root/test/support:/app/test/support:ro" \
    --entrypoint node bulletin:latest --import tsx test/support/probe.ts "$1"
}

# The stack is up when every service runs all its replicas and every server is listed, healthy and follows one coordinator.
settled() {
  local want=$1 listed
  listed=$(probe '{"reference":"tcp://reference:5559"}' 2>/dev/null | json "d.servers === undefined ? 'none' : d.servers.filter((s) => s.coordinator !== undefined).length + ' ' + [...new Set(d.servers.map((s) => s.coordinator))].join(',') + ' ' + d.servers.map((s) => s.name).sort().join(',')" 2>/dev/null || echo "none")
  echo "$listed"
  set -- $listed
  [ "${1:-}" = "$want" ] && [ "$(echo "${2:-}" | tr ',' '\n' | grep -c .)" = 1 ] && [ "${2:-}" != undefined ]
}
wait_settled() {
  local want=$1 state="" seen="" start=$SECONDS
  for _ in $(seq 1 90); do
    if state=$(settled "$want"); then echo "$state"; return 0; fi
    # Each new state on the way, with when (what a slow settle went through).
    [ "$state" != "$seen" ] && echo "swarm:   +$((SECONDS - start)) s: $state" >&2 && seen=$state
    sleep 2
  done
  fail "never $want servers following one coordinator: last seen '$state'"
}
state=$(wait_settled 3)
phase "3 servers up, one coordinator ($(echo "$state" | cut -d' ' -f2); names $(echo "$state" | cut -d' ' -f3))"

tester python3 /t/interop/standard_client.py tcp://broker:5555 tcp://proxy:5558 "sw$(date +%s)" >"$work/py.log" 2>&1 || fail "standard client: $(grep '"ok": false' "$work/py.log" | head -3)"
phase "standard-protocol Python client: $(grep -c '"ok": true' "$work/py.log") checks passed"

# Every acknowledged post on every live server.
all_on_every_server() {
  local acked=$1 missing=""
  for _ in $(seq 1 30); do
    missing=$(probe '{"reference":"tcp://reference:5559","ops":true}' | lacking "$acked")
    [ -z "$missing" ] && return 0
    sleep 1
  done
  fail "acknowledged posts missing: $missing"
}
tester python3 /t/docker/posts.py tcp://broker:5555 sw-a sw-room "before scaling" 30 >"$work/posts1.json" || fail "posts before scaling"

docker service scale "${stack}_server=5" >/dev/null 2>&1 || fail "docker service scale ${stack}_server=5"
state=$(wait_settled 5)
phase "docker service scale ${stack}_server=5: 5 servers, one coordinator ($(echo "$state" | cut -d' ' -f2))"
tester python3 /t/docker/posts.py tcp://broker:5555 sw-b sw-room "at five" 30 >"$work/posts2.json" || fail "posts at five servers"
acked=$(acked_in "$work/posts1.json" "$work/posts2.json")
all_on_every_server "$acked"
phase "all $(echo "$acked" | json "d.length") acknowledged posts on all 5 servers (servers 4 and 5 caught up)"

docker service scale "${stack}_server=3" >/dev/null 2>&1 || fail "docker service scale ${stack}_server=3"
state=$(wait_settled 3)
all_on_every_server "$acked"
phase "docker service scale ${stack}_server=3: 3 servers, one coordinator ($(echo "$state" | cut -d' ' -f2)), nothing lost"

# Docker 20.10 removes the services, then the network while their tasks are
# still stopping ("network ... is in use by task"): the documented way is to
# run it again once they are gone.
removed=""
for attempt in 1 2 3 4 5 6; do
  if docker stack rm "$stack" >"$work/rm.log" 2>&1 && [ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$stack")" ]; then removed=$attempt; break; fi
  sleep 3
done
[ -n "$removed" ] || fail "docker stack rm: $(cat "$work/rm.log")"
for _ in $(seq 1 60); do
  [ -z "$(docker ps -q --filter "label=com.docker.stack.namespace=$stack")" ] && break
  sleep 1
done
[ -z "$(docker ps -q --filter "label=com.docker.stack.namespace=$stack")" ] || fail "containers left after docker stack rm"
phase "docker stack rm (attempts: $removed)"
echo "swarm: all held in $(($(date +%s) - t0)) s"
