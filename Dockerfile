# One image for every role: the role is the command (broker, proxy, reference,
# server, bot, client). Build: docker build -t bulletin .
# zeromq and lmdb ship prebuilt binaries inside their npm packages, so the
# slim image needs no compiler.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY scripts/build.mjs ./scripts/build.mjs
COPY scripts/docker/slim.mjs ./scripts/docker/slim.mjs
COPY src ./src
COPY bench ./bench
# npm ci runs `prepare`, which compiles src/ and bench/ to dist/ (what the bin
# runs); then the dev dependencies (typescript, vitest, ...) are dropped, and
# what this platform never loads (other platforms' zeromq addons, sources
# and source maps of effect).
RUN npm ci --no-audit --no-fund --loglevel=error && npm prune --omit=dev --loglevel=error && npm cache clean --force \
 && node scripts/docker/slim.mjs && rm -rf scripts/docker

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=root:root /app /app
# Servers keep their data under /data (one folder per server name); the
# reference keeps its ranks there too. Owned by the unprivileged `node` user.
# The cluster's key lives in /keys (the compose `keys` service writes it there).
RUN mkdir -p /data /keys && chown node:node /data /keys && chmod 700 /keys
USER node
# Smoke test of the slimmed image: the native addons load, the bin runs compiled.
RUN node -e 'require("zeromq"); require("lmdb")' && node bin/bulletin.js --help >/dev/null
VOLUME ["/data", "/keys"]
EXPOSE 5555 5556 5557 5558 5559 5560
# Every role shuts down cleanly on SIGTERM (sockets closed, store flushed).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/bulletin.js"]
CMD ["--help"]
# Per role: compose sets BULLETIN_ROLE (and its own healthcheck per service).
# `bulletin health` runs the compiled bin without effect or zeromq for the
# roles it probes over TCP or HTTP: about 0.1 s and 50 MB.
HEALTHCHECK --interval=5s --timeout=3s --start-period=15s --retries=3 CMD node bin/bulletin.js health "${BULLETIN_ROLE:-client}"
