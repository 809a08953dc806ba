# The container the compose test runs the standard-protocol Python client in
# (test/interop/standard_client.py, written from PROTOCOL.md alone): Debian's
# python3-zmq and python3-msgpack, nothing of bulletin.
FROM node:20-bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-zmq python3-msgpack >/dev/null && rm -rf /var/lib/apt/lists/*
USER node
