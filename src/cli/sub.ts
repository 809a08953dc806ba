import { once } from "node:events"
import * as zmq from "zeromq"
import { unseal } from "../actors/credentials.ts"
import { type Publication, decodePublication } from "../protocol/messages.ts"
import { nameProblem } from "../protocol/names.ts"
import { ExitCode, Ports, type Spec, UsageError, endpoint, int, parse, usage } from "./options.ts"
import { oneLine, safe, time } from "./text.ts"

/**
 * `bulletin sub CHANNEL|@USER ...`: a tail of publications, like `nats sub`.
 * A SUB socket on the proxy (5558), subscribed to exactly the topics given,
 * one line per publication (or one JSON object per line with --json).
 *
 * ZeroMQ matches topics by prefix (`gen` would get `general`): like the
 * client, every publication is checked against the topic it came on, exactly.
 *
 * `@USER` is the private messages to USER on its public topic (the name):
 * every message to an UNCLAIMED name, and to a claimed one only from a
 * server that has not yet heard of the claim. Messages to a claimed name go
 * out sealed on a private topic whose name and key only a login with the
 * password returns: with `--password` (one name at a time) `sub` logs in as
 * that user through the broker, as `bulletin client --user USER --password`
 * would (a FIRST login with a password claims the name), and shows those too.
 * Without it they cannot be seen: that is the point of accounts.
 *
 * Like `monitor`, a subscriber gets what is published after it joined (the
 * proxy keeps nothing); `history` in the client reads the past.
 */
export const spec: Spec = {
  proxy: { env: "PROXY_ADDR", default: "127.0.0.1", help: "proxy host (subscribers use port 5558)" },
  json: { boolean: true, help: "one JSON object per publication" },
  count: { default: "0", help: "exit after this many publications (0: never)" },
  seconds: { default: "0", help: "exit after this many seconds (0: never)" },
  // Not BULLETIN_PASSWORD: a password set for the client must never log in (or claim a name) as the @USER given here.
  password: { env: "BULLETIN_SUB_PASSWORD", help: "with one @USER: log in as USER (through --broker) to read its sealed private topic too; a first login with a password claims the name" },
  broker: { env: "BROKER_ADDR", default: "127.0.0.1", help: "broker host (port 5555), for --password's login only" },
  timeout: { default: "2500", help: "milliseconds to wait for the login's reply (--password)" },
}

const summary = "tail publications: CHANNEL (its posts) or @USER (private messages to USER; see --help); exact topics"

const iso = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) || Math.abs(ms) > 8.64e15 ? undefined : new Date(ms).toISOString())

export interface Target {
  readonly kind: "channel" | "user"
  readonly name: string
}

/** The positional arguments: channel names and @user names, each legal. */
export const targetsOf = (args: ReadonlyArray<string>): Array<Target> => {
  if (args.length === 0) throw new UsageError("sub needs at least one CHANNEL or @USER (bulletin sub general @ana)")
  return args.map((a) => {
    const user = a.startsWith("@")
    const name = user ? a.slice(1) : a
    const problem = nameProblem(name)
    if (problem !== undefined) throw new UsageError(`'${safe(a)}': ${user ? "user" : "channel"} name ${problem}`)
    return { kind: user ? "user" : "channel", name }
  })
}

/** The line printed for a publication. */
export const render = (p: Publication, json: boolean, sealed: boolean): string => {
  const ms = p.meta.timestampMs
  if (json) {
    return JSON.stringify(
      p.service === "publish"
        ? { type: "publish", time: iso(ms), timestamp: ms, channel: p.channel, user: p.user, message: p.message, clock: p.meta.clock, origin: p.origin, seq: p.seq }
        : { type: "message", time: iso(ms), timestamp: ms, dst: p.dst, src: p.src, message: p.message, clock: p.meta.clock, sealed },
    )
  }
  return p.service === "publish"
    ? `[${time(ms)}] #${safe(p.channel)} <${safe(p.user)}> ${oneLine(p.message)}`
    : `[${time(ms)}] @${safe(p.dst)} <${safe(p.src)}> ${oneLine(p.message)}${sealed ? " (sealed)" : ""}`
}

/** A login as `user` through the broker: its private topic and key, if the name is claimed. */
const loginFor = async (broker: string, user: string, password: string, timeoutMs: number) => {
  const { askOnce } = await import("./ask.ts")
  let data: Record<string, unknown>
  try {
    data = await askOnce(endpoint(broker, Ports.brokerFrontend), "login", { timeoutMs, key: undefined, from: "sub", data: { user, password } })
  } catch (e) {
    throw new Error(`login as '${user}' through ${endpoint(broker, Ports.brokerFrontend)}: ${/timed out|not possible/i.test((e as Error).message) ? `no answer within ${timeoutMs} ms` : (e as Error).message}`)
  }
  if (data.status !== "sucesso") throw new Error(`login as '${user}' refused: ${safe(data.description ?? data.message ?? "error")}`)
  const { topic, topicKey } = data
  if (typeof topic === "string" && typeof topicKey === "string" && /^~[0-9a-f]{32}$/.test(topic) && /^[0-9a-f]{64}$/.test(topicKey)) return { topic, key: Buffer.from(topicKey, "hex") }
  return undefined
}

export const runSub = async (argv: ReadonlyArray<string>) => {
  const p = parse(argv, spec)
  if (p.flags.help) {
    console.log(
      `${usage("sub CHANNEL|@USER ...", summary, spec)}\n\n` +
        "@USER shows private messages to USER published on its name: all of them for an unclaimed\n" +
        "name; for a claimed one (accounts) they are sealed on a private topic only its logged-in\n" +
        "clients know: add --password to log in as USER and see those too. Only what is published\n" +
        "after `sub` joined is shown (the proxy keeps nothing).",
    )
    process.exit(0)
  }
  const targets = targetsOf(p.rest)
  const count = int(p.values.count, "count")
  const seconds = int(p.values.seconds, "seconds")
  const password = p.values.password === "" ? undefined : p.values.password
  const users = targets.filter((t) => t.kind === "user")
  if (password !== undefined && users.length !== 1) throw new UsageError("--password goes with exactly one @USER (it is that user's password)")

  // Topic -> what it carries for us: a channel's posts, a user's messages (public topic), or a user's sealed topic.
  const channels = new Set(targets.filter((t) => t.kind === "channel").map((t) => t.name))
  const publicUsers = new Set(users.map((t) => t.name))
  // Ctrl-C (or SIGTERM, or --seconds) closes the socket: the loop below ends and the process exits 0.
  let sub: zmq.Subscriber | undefined
  const stop = () => {
    if (sub === undefined) process.exit(ExitCode.ok) // still logging in
    if (!sub.closed) sub.close()
  }
  process.once("SIGINT", stop)
  process.once("SIGTERM", stop)

  let secret: { readonly topic: string; readonly key: Uint8Array; readonly user: string } | undefined
  if (password !== undefined) {
    const user = users[0]!.name
    const s = await loginFor(p.values.broker!, user, password, int(p.values.timeout, "timeout", 1))
    if (s === undefined) console.error(`sub: '${safe(user)}' has no private topic (not a claimed name, or an open-mode cluster): its messages are all on its public topic`)
    else secret = { ...s, user }
  }

  sub = new zmq.Subscriber({ linger: 0, receiveHighWaterMark: 10_000, maxMessageSize: 1 << 20, heartbeatInterval: 1_000, heartbeatTimeout: 3_000 })
  sub.connect(endpoint(p.values.proxy!, Ports.proxyBackend))
  for (const t of new Set([...channels, ...publicUsers])) sub.subscribe(t)
  if (secret !== undefined) sub.subscribe(secret.topic)
  // On stderr: stdout is the publications alone (for pipes and --json).
  console.error(`sub: subscribed to ${targets.map((t) => (t.kind === "channel" ? `#${t.name}` : `@${t.name}${secret !== undefined && secret.user === t.name ? " (and its sealed topic)" : ""}`)).join(", ")} on ${endpoint(p.values.proxy!, Ports.proxyBackend)}`)

  if (seconds > 0) setTimeout(stop, seconds * 1000).unref()

  // Per channel and origin, the last seq seen: a `prev` past it means publications were lost on the way (said on stderr).
  const lastSeen = new Map<string, number>()
  let shown = 0
  try {
    for await (const [topicFrame, payload] of sub) {
      if (topicFrame === undefined || payload === undefined) continue
      const topic = topicFrame.toString()
      const sealed = secret !== undefined && topic === secret.topic
      const frame = sealed ? unseal(secret!.key, payload) : payload
      if (frame === undefined) continue
      const decoded = decodePublication(frame)
      if (!decoded.ok) continue
      const pub = decoded.value
      // Exactly the topic asked: a post on its channel's topic; a message to the user it came for.
      const wanted =
        pub.service === "publish" ? !sealed && channels.has(topic) && pub.channel === topic : sealed ? pub.dst === secret!.user : publicUsers.has(topic) && pub.dst === topic
      if (!wanted) continue
      if (pub.service === "publish" && pub.origin !== undefined && pub.seq !== undefined) {
        const key = `${pub.channel}\u0000${pub.origin}`
        const last = lastSeen.get(key)
        if (last !== undefined && pub.seq <= last) continue // the same post twice
        if (last !== undefined && pub.prev !== undefined && pub.prev > last) console.error(`sub: missed posts of ${safe(pub.origin)} on #${safe(pub.channel)} (seq ${last + 1}..${pub.prev}): publications were lost on the way (history has them)`)
        lastSeen.set(key, pub.seq)
      }
      // A slow reader holds us back rather than letting the output grow in memory.
      if (!process.stdout.write(`${render(pub, p.flags.json === true, sealed)}\n`)) await once(process.stdout, "drain")
      shown += 1
      if (count > 0 && shown >= count) break
    }
  } catch (e) {
    if (!sub.closed) throw e
  } finally {
    stop()
  }
  // Exit once what was written is out (a pipe is written asynchronously).
  process.stdout.write("", () => process.exit(ExitCode.ok))
}
