import { existsSync, writeFile } from "node:fs"
import { hostname } from "node:os"
import { join } from "node:path"
import { Effect, Layer } from "effect"
import { bot } from "../actors/bot.ts"
import { defaultClientConfig } from "../actors/client.ts"
import { broker, proxy } from "../actors/devices.ts"
import { runMain, withClockSkew } from "../actors/runtime.ts"
import { fileLease } from "../actors/lamportLease.ts"
import { nodeCredentials } from "../actors/credentials.ts"
import { defaultReferenceConfig, reference } from "../actors/reference.ts"
import { type CoordinationSettings, defaultServerConfig, server } from "../actors/server.ts"
import { layerLmdb } from "../store/Store.ts"
import { layerZmq } from "../transport/zmq.ts"
import { formatKey, generateKey, securityFrom, writeKeyFile } from "../transport/keys.ts"
import { claimDataDir } from "./datadir.ts"
import { Ports, type Spec, UsageError, botAliveFile, endpoint, inspectUrlDefault, int, parse, usage } from "./options.ts"

const common: Spec = {
  broker: { env: "BROKER_ADDR", default: "127.0.0.1", help: "broker host (clients use port 5555, servers 5556)" },
  proxy: { env: "PROXY_ADDR", default: "127.0.0.1", help: "proxy host (publishers use port 5557, subscribers 5558)" },
}

/** Every cluster role: its key (CURVE on every link between cluster roles), or open mode. */
const security: Spec = {
  key: { env: "BULLETIN_KEY_FILE", help: "the cluster's key file (`bulletin keygen --out FILE`); or put '<public> <secret>' in BULLETIN_CLUSTER_KEY" },
  open: { boolean: true, env: "BULLETIN_OPEN", help: "open mode: no key, no authentication between cluster roles (to join standard servers of other implementations); logs a warning" },
}

export const specs = {
  broker: { ...security, host: { env: "BIND_HOST", default: "127.0.0.1", help: "address to bind 5555 and 5556 on (0.0.0.0 in containers)" } },
  proxy: { ...security, host: { env: "BIND_HOST", default: "127.0.0.1", help: "address to bind 5557 and 5558 on (0.0.0.0 in containers)" } },
  server: {
    ...common,
    ...security,
    name: { env: "SERVER_NAME", help: "unique server name (default: the host name, $HOSTNAME in a container)" },
    data: { env: "DATA_DIR", help: "this server's own data folder (default DATA_ROOT/NAME)" },
    "data-root": { env: "DATA_ROOT", default: "data", help: "folder holding one data folder per server name (compose: a volume shared by replicas, a folder each)" },
    host: { env: "SERVER_HOST", help: "this server's own address: its connections leave from it, its peer port binds on it (default: whatever the OS picks)" },
    reference: { env: "REFERENCE_ADDR", default: "127.0.0.1", help: "reference host (port 5559); 'none': no election or clock sync" },
    peer: { env: "PEER_BIND", help: "where the peer REP socket binds (default tcp://HOST:5560, HOST from --host or 127.0.0.1)" },
    advertise: { env: "PEER_ADDR", help: "how other servers reach this one (default: the --peer endpoint, or tcp://HOSTNAME:5560 when it binds 0.0.0.0)" },
    "clock-skew": { env: "CLOCK_SKEW_MS", default: "0", help: "fault injection: run as if this host's clock were off by this many ms (Berkeley pulls it back)" },
    inspect: { boolean: true, help: "send every machine's inspection events to the XState inspector relay (see --inspect-url, `bulletin inspector`)" },
    "inspect-url": { env: "INSPECT_URL", default: inspectUrlDefault, help: "WebSocket of the inspector relay" },
    "require-accounts": { boolean: true, env: "REQUIRE_ACCOUNTS", help: "every name must be claimed with a password before it posts, sends or reads private messages" },
    "metrics-port": { default: "none", help: "serve Prometheus metrics on http://HOST:PORT/metrics (HOST from --host, or 127.0.0.1; e.g. 9464); 'none': not served" },
    "metrics-host": { help: "address the metrics endpoint binds (default: --host, or 127.0.0.1; 0.0.0.0 in a container, for Prometheus on another host)" },
  },
  reference: {
    ...security,
    host: { env: "BIND_HOST", default: "127.0.0.1", help: "address to bind 5559 on (0.0.0.0 in containers)" },
    data: { env: "DATA_DIR", help: "folder to keep ranks in across restarts (default: memory only)" },
    "dead-after": { env: "SERVER_DEAD_AFTER_MS", default: "3500", help: "drop a server from the list after this long without a heartbeat (ms)" },
  },
  keygen: {
    out: { env: "BULLETIN_KEY_FILE", help: "write the key to this file (readable by its owner only) instead of printing it" },
    "if-missing": { boolean: true, help: "with --out: keep the file if it exists already (compose's one-shot key service)" },
    force: { boolean: true, help: "with --out: replace the file if it exists (every role then needs the new key)" },
  },
  bot: {
    ...common,
    rate: { env: "BOT_RATE", default: "2", help: "posts per second" },
    "per-channel": { env: "BOT_PER_CHANNEL", default: "10", help: "posts to one channel before picking another" },
    max: { env: "BOT_MAX", default: "0", help: "stop after this many posts (0: never)" },
    name: { env: "BOT_NAME", help: "fixed bot name (default: random)" },
    password: { env: "BULLETIN_PASSWORD", help: "log in with this password (claims the name; needed where the cluster requires accounts)" },
    "alive-file": { env: "BOT_ALIVE_FILE", default: botAliveFile, help: "file touched after each acknowledged post (what `bulletin health bot` checks); 'none': no file" },
  },
} satisfies Record<string, Spec>


/** The security of a cluster role: CURVE with the cluster's key, or (said loudly) open. */
const securityOf = (role: string, p: { readonly values: Record<string, string | undefined>; readonly flags: Record<string, boolean> }) => {
  const sec = securityFrom({ open: p.flags.open === true, keyFile: p.values.key, env: process.env })
  if (sec.mode === "open") console.warn(`${role}: OPEN MODE: links between cluster roles are neither authenticated nor encrypted; anyone who reaches them can join, forge and read (use a cluster key: bulletin keygen)`)
  return sec
}
const clusterTransport = (role: string, p: Parameters<typeof securityOf>[1]) => layerZmq(undefined, securityOf(role, p))

const inspectorFor = async (url: string, name: string) => {
  const { statelyInspector } = await import("./inspect.ts")
  const inspector = statelyInspector(url, name)
  console.log(`inspect: sending every machine's inspection events to ${url} (open the relay's page; \`bulletin inspector\` runs one)`)
  return () => inspector.observer
}

const coordinationOf = (values: Record<string, string | undefined>): CoordinationSettings => {
  const peerBind = values.peer ?? endpoint(values.host ?? "127.0.0.1", Ports.peer)
  const bindHost = /^tcp:\/\/([^:]+):/.exec(peerBind)?.[1]
  const advertised = values.advertise ?? (bindHost === "0.0.0.0" || bindHost === "*" ? peerBind.replace(`//${bindHost}:`, `//${process.env.HOSTNAME ?? hostname()}:`) : peerBind)
  return { reference: endpoint(values.reference!, Ports.reference), peerBind, peerAddr: endpoint(advertised, Ports.peer) }
}

/** `--metrics-port`: a TCP port (or 'none', handled by the caller). */
const metricsPortOf = (value: string | undefined): number => {
  const port = int(value, "metrics-port", 1)
  if (!Number.isInteger(port) || port > 65_535) throw new UsageError(`--metrics-port must be a port (1-65535) or 'none', got '${value}'`)
  return port
}

/**
 * Touches the bot's liveness file after an acknowledged post, at most once a
 * second (asynchronously: the post loop never waits on the disk).
 */
const aliveToucher = (file: string): (() => void) | undefined => {
  if (file === "none") return undefined
  let last = 0
  return () => {
    const now = Date.now()
    if (now - last < 1_000) return
    last = now
    writeFile(file, `${now}\n`, () => {})
  }
}

/** The cluster roles and keygen: `bulletin broker|proxy|keygen|reference|server|bot ...`. */
export const runRole = async (command: string, args: ReadonlyArray<string>): Promise<void> => {
  const show = (spec: Spec, summary: string) => {
    const p = parse(args, spec)
    if (p.flags.help) {
      console.log(usage(command, summary, spec))
      process.exit(0)
    }
    return p
  }
  switch (command) {
    case "broker": {
      const p = show(specs.broker, "the request broker")
      const { values } = p
      return runMain(broker({ frontend: endpoint(values.host!, Ports.brokerFrontend), backend: endpoint(values.host!, Ports.brokerBackend) }).pipe(Effect.provide(clusterTransport("broker", p))))
    }
    case "proxy": {
      const p = show(specs.proxy, "the publication proxy")
      const { values } = p
      return runMain(proxy({ frontend: endpoint(values.host!, Ports.proxyFrontend), backend: endpoint(values.host!, Ports.proxyBackend) }).pipe(Effect.provide(clusterTransport("proxy", p))))
    }
    case "keygen": {
      const { values, flags } = show(specs.keygen, "make a cluster key: every cluster role needs it (CURVE on every link between them)")
      if (values.out === undefined || values.out === "") return void process.stdout.write(formatKey(generateKey()))
      // BULLETIN_KEY_FILE may be exported for the roles: a plain `keygen` must not replace the cluster's key behind their back.
      if (existsSync(values.out) && flags["if-missing"] !== true && flags.force !== true) {
        throw new UsageError(`keygen: ${values.out} exists (the cluster key every role uses?); --if-missing keeps it, --force replaces it${process.env.BULLETIN_KEY_FILE === values.out ? " (the file comes from BULLETIN_KEY_FILE)" : ""}`)
      }
      const { created } = writeKeyFile(values.out, flags["if-missing"] === true)
      console.log(created ? `keygen: a new cluster key in ${values.out}` : `keygen: ${values.out} exists; kept`)
      return
    }
    case "reference": {
      const p = show(specs.reference, "the reference service")
      const { values } = p
      const config = {
        ...defaultReferenceConfig,
        bind: endpoint(values.host!, Ports.reference),
        dataDir: values.data,
        serverDeadAfterMs: int(values["dead-after"], "dead-after", 1),
      }
      return runMain(Effect.scoped(reference(config)).pipe(Effect.provide(clusterTransport("reference", p))))
    }
    case "server": {
      const p = show(specs.server, "a server")
      const { values, flags } = p
      const name = values.name ?? process.env.HOSTNAME ?? hostname()
      const security = securityOf(`server ${name}`, p)
      const transport = layerZmq(undefined, security)
      const data = values.data ?? join(values["data-root"]!, name)
      claimDataDir(data, name)
      // Connections leave from the server's own address (ZeroMQ's
      // "tcp://source:0;destination"), as they would from its own host.
      const own = values.host
      const from = (e: string) => (own === undefined || own === "0.0.0.0" || !e.startsWith("tcp://") ? e : e.replace("tcp://", `tcp://${own}:0;`))
      const config = {
        ...defaultServerConfig(name),
        brokerBackend: from(endpoint(values.broker!, Ports.brokerBackend)),
        proxyFrontend: from(endpoint(values.proxy!, Ports.proxyFrontend)),
        proxyBackend: from(endpoint(values.proxy!, Ports.proxyBackend)),
        coordination: values.reference === "none" ? undefined : coordinationOf(values),
        lamportLease: fileLease(join(data, "lamport")),
        credentials: security.mode === "curve" ? nodeCredentials(security.key.secretKey) : undefined,
        requireAccounts: flags["require-accounts"] === true,
        inspect: flags.inspect ? await inspectorFor(values["inspect-url"]!, name) : undefined,
        metrics: values["metrics-port"] === "none" ? undefined : { host: values["metrics-host"] ?? own ?? "127.0.0.1", port: metricsPortOf(values["metrics-port"]) },
      }
      const skew = Number(values["clock-skew"])
      if (!Number.isFinite(skew) || Math.abs(skew) > 86_400_000) throw new Error(`--clock-skew must be milliseconds within a day (±86400000), got '${values["clock-skew"]}'`)
      return runMain(withClockSkew(skew, Effect.scoped(server(config))).pipe(Effect.provide(Layer.mergeAll(transport, layerLmdb(data)))))
    }
    case "bot": {
      const { values } = show(specs.bot, "a bot")
      const config = {
        ...defaultClientConfig,
        broker: endpoint(values.broker!, Ports.brokerFrontend),
        proxy: endpoint(values.proxy!, Ports.proxyBackend),
        messagesPerSecond: int(values.rate, "rate"),
        messagesPerChannel: int(values["per-channel"], "per-channel", 1),
        messagesMax: int(values.max, "max"),
        name: values.name,
        password: values.password === "" ? undefined : values.password,
        onPosted: aliveToucher(values["alive-file"]!),
      }
      return runMain(Effect.scoped(bot(config)).pipe(Effect.provide(layerZmq())))
    }
    default:
      throw new Error(`not a role: ${command}`)
  }
}
