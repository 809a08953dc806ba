#!/usr/bin/env bash
# A Docker engine of the test's own, in a folder of its own (no systemd, no
# /var/lib/docker): Debian's docker.io with the vfs storage driver.
#   scripts/docker/engine.sh start DIR   installs docker.io and debootstrap if
#                                        missing (as root), starts dockerd with
#                                        its data, exec root and socket in DIR,
#                                        waits until it answers; exit 3 with the
#                                        reason if no engine can run here
#   scripts/docker/engine.sh stop DIR    stops it (containers first) and
#                                        removes DIR
# Then: DOCKER_HOST=unix://DIR/docker.sock
set -euo pipefail
cmd=${1:?start or stop}
dir=${2:?a folder}

case "$cmd" in
start)
  if [ "$(id -u)" -ne 0 ]; then
    echo "engine: not root: dockerd cannot be started here" >&2
    exit 3
  fi
  missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } || {
      echo "engine: cannot install ${missing[*]}" >&2
      exit 3
    }
  fi
  if DOCKER_HOST="unix://$dir/docker.sock" /usr/bin/docker version >/dev/null 2>&1; then
    echo "engine: already running at unix://$dir/docker.sock"
    exit 0
  fi
  mkdir -p "$dir/data" "$dir/exec"


  nohup dockerd --storage-driver=vfs --data-root "$dir/data" --exec-root "$dir/exec" \
    -H "unix://$dir/docker.sock" --pidfile "$dir/docker.pid" >"$dir/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do
    if DOCKER_HOST="unix://$dir/docker.sock" /usr/bin/docker version >/dev/null 2>&1; then
      echo "engine: dockerd $(DOCKER_HOST="unix://$dir/docker.sock" /usr/bin/docker version --format '{{.Server.Version}}') at unix://$dir/docker.sock"
      exit 0
    fi
    if [ -f "$dir/docker.pid" ] && ! kill -0 "$(cat "$dir/docker.pid")" 2>/dev/null; then break; fi
    sleep 0.5
  done
  echo "engine: dockerd did not start:" >&2
  tail -5 "$dir/dockerd.log" >&2
  exit 3
  ;;
stop)
  if [ -S "$dir/docker.sock" ]; then
    ids=$(DOCKER_HOST="unix://$dir/docker.sock" /usr/bin/docker ps -aq 2>/dev/null || true)
    [ -z "$ids" ] || DOCKER_HOST="unix://$dir/docker.sock" /usr/bin/docker rm -f $ids >/dev/null 2>&1 || true
    DOCKER_HOST="unix://$dir/docker.sock" /usr/bin/docker swarm leave --force >/dev/null 2>&1 || true
  fi
  if [ -f "$dir/docker.pid" ]; then
    pid=$(cat "$dir/docker.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # vfs layers and mounts: unmount anything left under DIR before removing it.
  grep " $dir/" /proc/mounts | awk '{ print $2 }' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: engine.sh start|stop DIR" >&2
  exit 2
  ;;
esac
