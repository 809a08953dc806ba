import { createInterface } from "node:readline"
import { Duration, Effect, Queue } from "effect"
import { type BulletinClient, type Reply, defaultClientConfig, makeClient } from "../actors/client.ts"
import { runMain } from "../actors/runtime.ts"
import type { Publication } from "../protocol/messages.ts"
import { layerZmq } from "../transport/zmq.ts"
import { Ports, type Spec, endpoint, int, parse, usage } from "./options.ts"

const spec: Spec = {
  broker: { env: "BROKER_ADDR", default: "127.0.0.1", help: "broker host" },
  proxy: { env: "PROXY_ADDR", default: "127.0.0.1", help: "proxy host" },
  user: { env: "BULLETIN_USER", help: "log in as this user at start" },
  password: { env: "BULLETIN_PASSWORD", help: "the password of every login (claims the name on its first login with one; the cluster needs its key for accounts)" },
  json: { boolean: true, help: "print replies and incoming messages as JSON lines (for scripts)" },
  linger: { default: "0", help: "with commands from stdin: milliseconds to keep showing incoming messages after the last one" },
  timeout: { default: "2500", help: "milliseconds to wait for a reply before retrying" },
}

export const commandsHelp = `Commands:
  login NAME [PASSWORD]      log in (and receive private messages to NAME); a password claims
                             the name, or proves it is yours (default: --password)
  users                      list users
  channels                   list channels
  channel NAME               create a channel
  subscribe NAME             receive a channel's posts live (unsubscribe NAME to stop)
  publish CHANNEL TEXT...    post to a channel
  message USER TEXT...       send a private message
  history CHANNEL [N]        the last N posts of a channel
  history @USER [N]          the last N private messages between you and USER
  sleep MS                   wait (for scripts)
  help, quit`

/** Terminal safety: what a hostile server sends must not drive our terminal. */
// eslint-disable-next-line no-control-regex
const safe = (s: unknown) => String(s).replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, "\uFFFD")

const time = (ms: number | undefined): string => (ms === undefined || !Number.isFinite(ms) ? "--:--:--" : new Date(ms).toLocaleTimeString("en-GB", { hour12: false }))

const showPublication = (p: Publication) =>
  p.service === "publish"
    ? `[${time(p.meta.timestampMs)}] #${safe(p.channel)} <${safe(p.user)}> ${safe(p.message)}`
    : `[${time(p.meta.timestampMs)}] (private) <${safe(p.src)}> ${safe(p.message)}`

const showPost = (p: Record<string, unknown>) =>
  p.service === "publish"
    ? `[${time(Number(p.timestamp))}] #${safe(p.channel)} <${safe(p.user)}> ${safe(p.message)}`
    : `[${time(Number(p.timestamp))}] <${safe(p.src)}> -> <${safe(p.dst)}> ${safe(p.message)}`

const showReply = (r: Reply): string => {
  if (!r.ok) return `error: ${safe(r.error)}`
  if (Array.isArray(r.data.users)) return `users (${r.data.users.length}): ${r.data.users.map(safe).join(", ")}`
  if (Array.isArray(r.data.channels)) return `channels (${r.data.channels.length}): ${r.data.channels.map(safe).join(", ")}`
  if (Array.isArray(r.data.messages)) {
    const lines = (r.data.messages as Array<Record<string, unknown>>).map(showPost)
    return lines.length === 0 ? "(no messages)" : lines.join("\n") + (r.data.more === true ? "\n(more: history ... with a larger N)" : "")
  }
  return "ok"
}

type Out = (line: string) => void

/** Commands that failed (an error reply, a usage error, an unknown command): a script's exit status is 1 if any did. */
let failures = 0

const execute = (client: BulletinClient, line: string, out: Out, json: boolean, password?: string) =>
  Effect.gen(function* () {
    const [cmd, ...args] = line.trim().split(/\s+/)
    const text = line.trim().slice((cmd ?? "").length).trim()
    const rest = (n: number) => args.slice(n).join(" ")
    const print = (r: Reply, extra: Record<string, unknown> = {}) => {
      if (!r.ok) failures += 1
      out(json ? JSON.stringify({ type: "reply", command: cmd, ok: r.ok, error: r.error, attempts: r.attempts, ...extra, data: r.data }) : showReply(r))
    }
    const needs = (n: number, form: string) => {
      if (args.length >= n) return true
      failures += 1
      out(json ? JSON.stringify({ type: "usage", command: cmd, usage: form }) : `usage: ${form}`)
      return false
    }
    switch (cmd) {
      case undefined:
      case "":
        return true
      case "login":
        if (needs(1, "login NAME [PASSWORD]")) print(yield* client.login(args[0]!, args[1] ?? password))
        return true
      case "users":
        print(yield* client.users())
        return true
      case "channels":
        print(yield* client.channels())
        return true
      case "channel":
        if (needs(1, "channel NAME")) print(yield* client.channel(args[0]!))
        return true
      case "subscribe":
      case "unsubscribe":
        if (!needs(1, `${cmd} NAME`)) return true
        yield* cmd === "subscribe" ? client.subscribe(args[0]!) : client.unsubscribe(args[0]!)
        out(json ? JSON.stringify({ type: cmd, topic: args[0] }) : `${cmd}d ${safe(args[0])}`)
        return true
      case "publish":
        if (needs(2, "publish CHANNEL TEXT")) {
          const body = text.slice(args[0]!.length).trim()
          print(yield* client.publish(args[0]!, body), { channel: args[0], text: body })
        }
        return true
      case "message":
        if (needs(2, "message USER TEXT")) {
          const body = text.slice(args[0]!.length).trim()
          print(yield* client.message(args[0]!, body), { dst: args[0], text: body })
        }
        return true
      case "history": {
        if (!needs(1, "history CHANNEL|@USER [N]")) return true
        const limit = args[1] === undefined ? undefined : Number(args[1])
        const target = args[0]!
        const query = target.startsWith("@") ? { user: client.user() ?? "", peer: target.slice(1) } : { channel: target }
        print(yield* client.history({ ...query, ...(limit === undefined ? {} : { limit }) }))
        return true
      }
      case "sleep":
        yield* Effect.sleep(Duration.millis(Number(args[0] ?? 0)))
        return true
      case "help":
        out(commandsHelp)
        return true
      case "quit":
      case "exit":
        return false
      default:
        failures += 1
        out(json ? JSON.stringify({ type: "error", error: `unknown command '${cmd}'` }) : `unknown command '${safe(cmd)}' (try help)${rest(0) === "" ? "" : ""}`)
        return true
    }
  }).pipe(
    Effect.catchTag("ClientError", (e) => Effect.sync(() => { failures += 1; out(json ? JSON.stringify({ type: "error", error: e.message }) : `error: ${e.message}`); return true })),
  )

export const runClientCli = (argv: ReadonlyArray<string>) => {
  const p = parse(argv, spec)
  if (p.flags.help) {
    console.log(`${usage("client", "the interactive client", spec)}\n\n${commandsHelp}`)
    return
  }
  const json = p.flags.json === true
  const interactive = process.stdin.isTTY === true && !json
  const config = {
    ...defaultClientConfig,
    broker: endpoint(p.values.broker!, Ports.brokerFrontend),
    proxy: endpoint(p.values.proxy!, Ports.proxyBackend),
    requestTimeoutMs: int(p.values.timeout, "timeout", 1),
  }
  const program = Effect.gen(function* () {
    const client = yield* makeClient(config)
    const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: interactive, prompt: "bulletin> " })
    yield* Effect.addFinalizer(() => Effect.sync(() => rl.close()))
    const out: Out = (line) => {
      if (!interactive) return void process.stdout.write(`${line}\n`)
      // Print above the line being typed, then redraw the prompt and the typing.
      process.stdout.write("\r\x1b[2K")
      process.stdout.write(`${line}\n`)
      rl.prompt(true)
    }
    const lines = yield* Queue.unbounded<string | null>()
    rl.on("line", (l) => Effect.runFork(Queue.offer(lines, l)))
    rl.on("close", () => Effect.runFork(Queue.offer(lines, null)))

    yield* Effect.forkScoped(
      Effect.forever(
        Effect.map(Queue.take(client.publications), (pub) =>
          out(json ? JSON.stringify({ type: pub.service, ...pub, meta: undefined, timestamp: pub.meta.timestampMs, clock: pub.meta.clock }) : showPublication(pub)),
        ),
      ),
    )
    const password = p.values.password === "" ? undefined : p.values.password
    if (p.values.user !== undefined) yield* execute(client, `login ${p.values.user}`, out, json, password)
    if (interactive) {
      // Say "connected" only once the cluster has answered (ZeroMQ connects lazily: a broker that is not there is silence).
      if (p.values.user === undefined) {
        const probe = yield* Effect.result(client.channels())
        if (probe._tag === "Failure") {
          out(`no answer from ${config.broker} within ${config.requestTimeoutMs} ms: is the cluster running (bulletin up)? Or give its address: --broker HOST --proxy HOST`)
          process.exitCode = 1
          return
        }
      }
      out(`connected to ${config.broker}; type help for commands`)
      rl.prompt()
    }
    for (;;) {
      const line = yield* Queue.take(lines)
      if (line === null) break
      const goOn = yield* execute(client, line, out, json, password)
      if (!goOn) break
      if (interactive) rl.prompt()
    }
    if (!interactive) {
      yield* Effect.sleep(Duration.millis(int(p.values.linger, "linger")))
      // A script (commands on stdin, --json or not) learns from the exit status whether every command worked.
      if (failures > 0) process.exitCode = 1
    }
  })
  runMain(Effect.scoped(program).pipe(Effect.provide(layerZmq())))
}
