#!/usr/bin/env bash
# Makes a stand-in for the image node:20-bookworm-slim when it cannot be
# pulled (no image registry reachable): Debian bookworm (debootstrap, minbase,
# from the mirror apt already uses), this machine's node and npm in
# /usr/local, the `node` user (uid 1000), and the host's extra CA file where
# NODE_EXTRA_CA_CERTS names one (or `npm ci` inside the build fails with
# SELF_SIGNED_CERT_IN_CHAIN). Needs root, debootstrap, and DOCKER_HOST set.
#   scripts/docker/base-image.sh [IMAGE]      (default node:20-bookworm-slim)
set -euo pipefail
image=${1:-node:20-bookworm-slim}
docker=${DOCKER:-docker}

if $docker image inspect "$image" >/dev/null 2>&1; then
  echo "base image: $image is there"
  exit 0
fi
if timeout 60 $docker pull "$image" >/dev/null 2>&1; then
  echo "base image: pulled $image"
  exit 0
fi

mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian

root=$(mktemp -d "${TMPDIR:-/tmp}/bulletin-base.XXXXXX")
trap 'rm -rf "$root"' EXIT
started=$(date +%s)
echo "base image: $image cannot be pulled; building a stand-in from Debian bookworm ($mirror)"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"

# Node and npm as the official image has them: /usr/local/bin/{node,npm,npx}.
node_bin=$(command -v node)
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
mkdir -p "$root/usr/local/bin" "$root/usr/local/lib/node_modules"
cp "$(readlink -f "$node_bin")" "$root/usr/local/bin/node"
cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"

# The node user and group (uid and gid 1000), as in the official image.
echo "node:x:1000:" >>"$root/etc/group"
echo "node:x:1000:1000::/home/node:/bin/bash" >>"$root/etc/passwd"
echo "node:*:19000:0:99999:7:::" >>"$root/etc/shadow"
mkdir -p "$root/home/node" && chown 1000:1000 "$root/home/node"

# Smaller: no apt lists, docs or man pages (the slim image has none either).
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*

changes=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'ENV NODE_VERSION='"$(node -p process.versions.node)" --change 'CMD ["node"]')
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  mkdir -p "$root$(dirname "$NODE_EXTRA_CA_CERTS")"
  cp "$NODE_EXTRA_CA_CERTS" "$root$NODE_EXTRA_CA_CERTS"
  changes+=(--change "ENV NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS")
fi
chmod 755 "$root" # mktemp made it 0700: nobody but root could reach /
tar -C "$root" -c . | $docker import "${changes[@]}" - "$image" >/dev/null
echo "base image: $image built in $(($(date +%s) - started)) s ($($docker image inspect "$image" --format '{{.Size}}' | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
