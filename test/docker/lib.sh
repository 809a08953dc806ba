# What test/docker/compose.sh and swarm.sh share (sourced; `label` and
# `network` are set by the script before it calls these).
engine_dir=${BULLETIN_DOCKER_DIR:-/tmp/bulletin-docker}
export DOCKER_HOST="unix://$engine_dir/docker.sock"
# Debian's docker.io client (the engine's own version), whatever else is on the PATH.
docker() { /usr/bin/docker "$@"; }
work=$(mktemp -d "${TMPDIR:-/tmp}/bulletin-$label-run.XXXXXX")
t0=$(date +%s)
phase_start=$t0
# One line per phase: what held, and how long it took.
phase() {
  local now
  now=$(date +%s)
  printf '%s: %-62s %4d s\n' "$label" "$1" "$((now - phase_start))"
  phase_start=$now
}
# Evaluates a JavaScript expression over the JSON on stdin (`d`).
json() { node -e "const d = JSON.parse(require('fs').readFileSync(0, 'utf8')); const r = ($1); console.log(typeof r === 'string' ? r : JSON.stringify(r))"; }
# The standard-protocol Python client's container, on the network under test (test/ mounted at /t).
tester() { docker run --rm --label bulletin-ci-run --network "$network" -v "$root/test:/t:ro" bulletin-tester:latest "$@"; }
# The acknowledged messages of posts.py outputs (files), as one JSON list.
acked_in() { cat "$@" | node -e "console.log(JSON.stringify(require('fs').readFileSync(0, 'utf8').trim().split('\n').flatMap((l) => JSON.parse(l).acked)))"; }
# From a probe with ops on stdin: which servers lack which of the ACKED messages ('' when none does).
lacking() { ACKED="$1" json "d.servers.map((s) => { const have = new Set((s.ops ?? []).filter((o) => o.kind === 'publish').map((o) => o.message)); const lost = JSON.parse(process.env.ACKED).filter((m) => !have.has(m)); return lost.length === 0 ? '' : s.name + ' lacks ' + lost.length + (s.error ? ' (' + s.error + ')' : '') }).filter((x) => x !== '').join('; ')"; }
# Starts the test's engine (or finds it running); where none can be started, says why and ends the script (exit 0: skipped).
start_engine_or_skip() {
  local out
  if ! out=$(bash "$root/scripts/docker/engine.sh" start "$engine_dir" 2>&1); then
    echo "$label: SKIPPED: no Docker engine can be started here: $out"
    rm -rf "$work"
    exit 0
  fi
  echo "$out"
}
