import { emitKeypressEvents, createInterface } from "node:readline"
import { Duration, Effect, Queue } from "effect"
import { type BulletinClient, type Reply, defaultClientConfig, makeClient } from "../actors/client.ts"
import { runMain } from "../actors/runtime.ts"
import { Limits } from "../protocol/limits.ts"
import type { Publication } from "../protocol/messages.ts"
import { layerZmq } from "../transport/zmq.ts"
import { Ports, type Spec, didYouMean, endpoint, int, parse, usage } from "./options.ts"
import { oneLine, safe, time } from "./text.ts"
import { type Key, LineEditor, Screen, type Words, appendHistory, cleanInput, commonPrefix, complete, historyPath, loadHistory } from "./terminal.ts"

export const spec: Spec = {
  broker: { env: "BROKER_ADDR", default: "127.0.0.1", help: "broker host" },
  proxy: { env: "PROXY_ADDR", default: "127.0.0.1", help: "proxy host" },
  user: { env: "BULLETIN_USER", help: "log in as this user at start" },
  password: { env: "BULLETIN_PASSWORD", help: "the password of every login (claims the name on its first login with one; the cluster needs its key for accounts)" },
  json: { boolean: true, help: "print replies and incoming messages as JSON lines (for scripts)" },
  linger: { default: "0", help: "with commands from stdin: milliseconds to keep showing incoming messages after the last one" },
  timeout: { default: "2500", help: "milliseconds to wait for a reply before retrying" },
  "history-file": { env: "BULLETIN_HISTORY_FILE", path: "file", help: "the interactive client's line history, mode 0600, the last 1000 lines, never a login's password (default $XDG_STATE_HOME/bulletin/history or ~/.local/state/bulletin/history; empty: none)" },
  "no-history": { boolean: true, help: "keep no history file" },
}

export const commandsHelp = `Commands (each with or without a leading /):
  login NAME [PASSWORD]      log in as NAME (and receive private messages to NAME); PASSWORD, if
                             given, claims the name on its first use or proves it is yours
                             (default: --password); nothing may follow it
  users, names               list users
  channels, list             list channels
  channel NAME               create a channel
  join NAME                  make NAME the current channel (and receive its posts); a channel that
                             does not exist is refused: join -c NAME creates it first
  part [NAME]                leave the current channel (or NAME)
  query [USER]               talk privately with USER (query alone ends it)
  msg USER TEXT...           send a private message (also: message USER TEXT...)
  me ACTION...               post "* YOU ACTION" to the current channel or query
  subscribe NAME             receive a channel's posts live (unsubscribe NAME to stop)
  publish CHANNEL TEXT...    post to a channel
  history [CHANNEL] [N]      the last N posts of a channel (default: the current one)
  history @USER [N]          the last N private messages between you and USER
  sleep MS                   wait (for scripts)
  help, quit (exit)
After join or query, a line that does not start with / is a post there (//text posts "/text"),
so commands then need their /.`

export const keysHelp = `Keys: Tab completes commands, channels (after join, publish, history, or #) and users (after
msg, query, or @); Up/Down walk the history (kept across runs), Ctrl-R searches it (again: older);
Ctrl-C clears the line, and on an empty line quits, as Ctrl-D or /quit do; Ctrl-A/Ctrl-E start/end,
Ctrl-U/Ctrl-K cut before/after the cursor, Ctrl-W a word, Ctrl-L clears the screen. A pasted line is
inserted as typed; a pasted block of several lines asks first (send as lines, join, or drop).`


/** `* ana waves` from ana (what `me` posts) is shown as an action, not as `<ana> * ana waves`. */
const said = (user: unknown, message: unknown) => {
  const u = safe(user)
  const m = oneLine(message)
  return m.startsWith(`* ${u} `) ? m : `<${u}> ${m}`
}

const showPublication = (p: Publication) =>
  p.service === "publish" ? `[${time(p.meta.timestampMs)}] #${safe(p.channel)} ${said(p.user, p.message)}` : `[${time(p.meta.timestampMs)}] (private) ${said(p.src, p.message)}`

const showPost = (p: Record<string, unknown>) =>
  p.service === "publish"
    ? `[${time(Number(p.timestamp))}] #${safe(p.channel)} ${said(p.user, p.message)}`
    : `[${time(Number(p.timestamp))}] <${safe(p.src)}> -> <${safe(p.dst)}> ${oneLine(p.message)}`

/**
 * The server's error texts in the client's words, the same word for the same
 * fact: an unknown channel is "no such channel" whether one posts to it,
 * joins it or reads its history.
 */
export const plainError = (error: string): string =>
  error
    .replace(/^channel '(.*)' does not exist$/s, "no such channel '$1'")
    .replace(/^user '(.*)' does not exist$/s, "no such user '$1'")
    .replace(/^invalid \w+ request: (?:\w+: )?/, "")

const showReply = (r: Reply): string => {
  if (!r.ok) return `error: ${safe(plainError(r.error ?? "error"))}`
  if (Array.isArray(r.data.users)) return `users (${r.data.users.length}): ${r.data.users.map(safe).join(", ")}`
  if (Array.isArray(r.data.channels)) return `channels (${r.data.channels.length}): ${r.data.channels.map(safe).join(", ")}`
  if (Array.isArray(r.data.messages)) {
    const lines = (r.data.messages as Array<Record<string, unknown>>).map(showPost)
    return lines.length === 0 ? "(no messages)" : lines.join("\n") + (r.data.more === true ? "\n(more: history ... with a larger N)" : "")
  }
  return "ok"
}

type Out = (line: string) => void

/** The commands, for completion and "did you mean". */
const commandNames = ["login", "users", "names", "channels", "list", "channel", "join", "part", "query", "msg", "message", "me", "subscribe", "unsubscribe", "publish", "history", "sleep", "help", "quit", "exit"]

export interface SessionState {
  /** Commands that failed (an error reply, a usage error, an unknown command): a script's exit status is 1 if any did. */
  failures: number
  /** Where a line that does not start with / goes. */
  current: { readonly kind: "channel" | "user"; readonly name: string } | undefined
  /** Channels joined, the latest last. */
  joined: Array<string>
  /** For completion: names from the last lists and from what we saw. */
  channels: Set<string>
  users: Set<string>
  listedAt: number
}

export const newState = (): SessionState => ({ failures: 0, current: undefined, joined: [], channels: new Set(), users: new Set(), listedAt: 0 })

export const promptOf = (s: SessionState) => (s.current === undefined ? "bulletin> " : `${s.current.kind === "channel" ? "#" : "@"}${cleanInput(s.current.name)}> `)

interface Mode {
  readonly json: boolean
  readonly interactive: boolean
  readonly password: string | undefined
}

const listNames = (r: Reply, key: "users" | "channels") => (r.ok && Array.isArray(r.data[key]) ? (r.data[key] as Array<unknown>).filter((n): n is string => typeof n === "string") : undefined)

/** The channels and users for completion, read again (errors ignored: completion then offers what it had). */
const refreshNames = (client: BulletinClient, state: SessionState) =>
  Effect.gen(function* () {
    state.listedAt = Date.now()
    const c = listNames(yield* client.channels(), "channels")
    if (c !== undefined) state.channels = new Set([...c, ...state.joined])
    const u = listNames(yield* client.users(), "users")
    if (u !== undefined) state.users = new Set(u)
  }).pipe(Effect.catch(() => Effect.void))

const execute = (client: BulletinClient, line: string, out: Out, mode: Mode, state: SessionState) =>
  Effect.gen(function* () {
    const { json } = mode
    const trimmed = line.trim()
    if (trimmed === "") return true
    const fail = (text: string, extra: Record<string, unknown> = {}) => {
      state.failures += 1
      out(json ? JSON.stringify({ type: "error", error: text, ...extra }) : `error: ${safe(text)}`)
    }
    const note = (text: string, data: Record<string, unknown>) => out(json ? JSON.stringify(data) : text)
    const print = (cmd: string, r: Reply, extra: Record<string, unknown> = {}, text?: string) => {
      if (!r.ok) state.failures += 1
      if (json) return out(JSON.stringify({ type: "reply", command: cmd, ok: r.ok, error: r.error === undefined ? undefined : plainError(r.error), attempts: r.attempts, ...extra, data: r.data }))
      if (text !== undefined && r.ok) {
        if (text !== "") out(text)
      } else out(showReply(r))
    }
    const needs = (cmd: string, args: ReadonlyArray<string>, n: number, form: string, most = Number.POSITIVE_INFINITY) => {
      if (args.length >= n && args.length <= most) return true
      state.failures += 1
      out(json ? JSON.stringify({ type: "usage", command: cmd, usage: form }) : `usage: ${form}`)
      return false
    }
    /** A post to a channel or a private message, as `publish`/`message` do (in a terminal: quieter). */
    const post = (kind: "channel" | "user", name: string, body: string) =>
      Effect.gen(function* () {
        if (kind === "channel") {
          const r = yield* client.publish(name, body)
          // Its echo comes back on the channel we follow; elsewhere, say where it went.
          print("publish", r, { channel: name, text: body }, mode.interactive ? (state.joined.includes(name) ? "" : `posted to #${safe(name)}`) : undefined)
        } else {
          const r = yield* client.message(name, body)
          if (r.ok) state.users.add(name)
          print("message", r, { dst: name, text: body }, mode.interactive ? (name === client.user() ? "" : `-> <${safe(name)}> ${safe(body)}`) : undefined)
        }
      })
    const channelExists = (name: string) =>
      Effect.map(client.channels(), (r) => {
        const names = listNames(r, "channels")
        if (names !== undefined) for (const n of names) state.channels.add(n)
        return names === undefined ? undefined : names.includes(name)
      })

    // After join or query: plain text is a post there ("//text" posts "/text").
    if (state.current !== undefined && (!trimmed.startsWith("/") || trimmed.startsWith("//"))) {
      yield* post(state.current.kind, state.current.name, trimmed.startsWith("//") ? trimmed.slice(1) : trimmed)
      return true
    }
    const [word, ...args] = trimmed.split(/\s+/)
    const cmd = word!.replace(/^\//, "").toLowerCase()
    const text = trimmed.slice(word!.length).trim()
    const after = (n: number) => {
      let rest = text
      for (let i = 0; i < n; i++) rest = rest.slice(args[i]!.length).trim()
      return rest
    }
    const channelName = (s: string) => s.replace(/^#/, "")
    switch (cmd) {
      case "":
        return true
      case "login":
        if (needs(cmd, args, 1, "login NAME [PASSWORD]  (NAME: the user to log in as; PASSWORD: claims the name on its first use, or proves it is yours; nothing after it)", 2)) {
          const withPassword = args[1] ?? mode.password
          const r = yield* client.login(args[0]!, withPassword)
          if (r.ok) state.users.add(args[0]!)
          print("login", r, {}, mode.interactive ? `logged in as ${safe(args[0])}${withPassword === undefined ? "" : " (with a password: the name is yours)"}` : undefined)
        }
        return true
      case "users":
      case "names": {
        const r = yield* client.users()
        const u = listNames(r, "users")
        if (u !== undefined) state.users = new Set(u)
        print(cmd, r)
        return true
      }
      case "channels":
      case "list": {
        const r = yield* client.channels()
        const c = listNames(r, "channels")
        if (c !== undefined) state.channels = new Set([...c, ...state.joined])
        print(cmd, r)
        return true
      }
      case "channel":
        if (needs(cmd, args, 1, "channel NAME", 1)) {
          const r = yield* client.channel(channelName(args[0]!))
          if (r.ok) state.channels.add(channelName(args[0]!))
          print(cmd, r)
        }
        return true
      case "join": {
        const create = args[0] === "-c"
        const names = create ? args.slice(1) : args
        if (!needs(cmd, names, 1, "join [-c] CHANNEL  (-c: create it first)", 1)) return true
        const name = channelName(names[0]!)
        if (create) {
          const r = yield* client.channel(name)
          // A channel that is there already is as good.
          if (!r.ok && (yield* channelExists(name)) !== true) {
            print("channel", r)
            return true
          }
        } else {
          const exists = yield* channelExists(name)
          if (exists === false) {
            fail(`no such channel '${name}' (join -c ${name} creates it)`, { command: cmd, channel: name })
            return true
          }
        }
        yield* client.subscribe(name)
        state.channels.add(name)
        state.joined = [...state.joined.filter((c) => c !== name), name]
        state.current = { kind: "channel", name }
        note(`now talking in #${safe(name)}${mode.interactive ? " (a line without / is a post here; /part leaves)" : ""}`, { type: "join", channel: name })
        return true
      }
      case "part": {
        const name = args[0] !== undefined ? channelName(args[0]) : state.current?.kind === "channel" ? state.current.name : undefined
        if (name === undefined) {
          needs(cmd, [], 1, "part [CHANNEL]  (no current channel: give one)")
          return true
        }
        if (!state.joined.includes(name)) {
          fail(`not in #${name}`, { command: cmd, channel: name })
          return true
        }
        yield* client.unsubscribe(name)
        state.joined = state.joined.filter((c) => c !== name)
        if (state.current?.kind === "channel" && state.current.name === name) {
          const previous = state.joined[state.joined.length - 1]
          state.current = previous === undefined ? undefined : { kind: "channel", name: previous }
        }
        note(`left #${safe(name)}${state.current === undefined ? "" : `; now in ${state.current.kind === "channel" ? "#" : "@"}${safe(state.current.name)}`}`, { type: "part", channel: name })
        return true
      }
      case "query": {
        if (!needs(cmd, args, 0, "query [USER]  (alone: end the private conversation)", 1)) return true
        if (args[0] === undefined) {
          const previous = state.joined[state.joined.length - 1]
          state.current = previous === undefined ? undefined : { kind: "channel", name: previous }
          note(`private conversation ended${previous === undefined ? "" : `; now in #${safe(previous)}`}`, { type: "query", user: null })
          return true
        }
        const name = args[0].replace(/^@/, "")
        state.current = { kind: "user", name }
        state.users.add(name)
        note(`talking privately with ${safe(name)}${mode.interactive ? " (a line without / is a message to them; /query alone ends it)" : ""}`, { type: "query", user: name })
        return true
      }
      case "me":
        if (!needs(cmd, args, 1, "me ACTION  (posts '* YOU ACTION' to the current channel or query)")) return true
        if (state.current === undefined) return fail("no current channel: join one first (or query USER)", { command: cmd }), true
        if (client.user() === undefined) return fail("log in first (login NAME)", { command: cmd }), true
        yield* post(state.current.kind, state.current.name, `* ${client.user()} ${text}`)
        return true
      case "subscribe":
      case "unsubscribe":
        if (!needs(cmd, args, 1, `${cmd} NAME`, 1)) return true
        yield* cmd === "subscribe" ? client.subscribe(channelName(args[0]!)) : client.unsubscribe(channelName(args[0]!))
        note(`${cmd}d ${safe(channelName(args[0]!))}`, { type: cmd, topic: channelName(args[0]!) })
        return true
      case "publish":
        if (needs(cmd, args, 2, "publish CHANNEL TEXT")) {
          const body = after(1)
          print(cmd, yield* client.publish(channelName(args[0]!), body), { channel: channelName(args[0]!), text: body }, mode.interactive ? (state.joined.includes(channelName(args[0]!)) ? "" : "ok") : undefined)
        }
        return true
      case "message":
      case "msg":
        if (needs(cmd, args, 2, `${cmd} USER TEXT`)) yield* post("user", args[0]!.replace(/^@/, ""), after(1))
        return true
      case "history": {
        const form = "history [CHANNEL|@USER] [N]  (N: 1 to 500; CHANNEL: the current one if not given)"
        if (!needs(cmd, args, 0, form, 2)) return true
        const numeric = args.length >= 1 && /^\d+$/.test(args[args.length - 1]!)
        const limitText = args.length === 2 || (args.length === 1 && numeric) ? args[args.length - 1] : undefined
        const target = args.length === 2 || (args.length === 1 && !numeric) ? args[0]! : state.current === undefined ? undefined : `${state.current.kind === "user" ? "@" : ""}${state.current.name}`
        if (target === undefined) return needs(cmd, [], 1, form), true
        const limit = limitText === undefined ? undefined : Number(limitText)
        if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= Limits.historyLimitMax)) return needs(cmd, [], 1, form), true
        if (target.startsWith("@") && client.user() === undefined) return fail("log in first (login NAME): private history is yours and one other user's", { command: cmd }), true
        const query = target.startsWith("@") ? { user: client.user() ?? "", peer: target.slice(1) } : { channel: channelName(target) }
        const r = yield* client.history({ ...query, ...(limit === undefined ? {} : { limit }) })
        // A server answers the history of a channel that is not there with no posts: say which it is.
        const asked = target.startsWith("@") ? undefined : channelName(target)
        if (r.ok && asked !== undefined && Array.isArray(r.data.messages) && r.data.messages.length === 0 && (yield* channelExists(asked)) === false) {
          print(cmd, { ...r, ok: false, error: `no such channel '${asked}'` })
          return true
        }
        print(cmd, r)
        return true
      }
      case "sleep":
        yield* Effect.sleep(Duration.millis(Number(args[0] ?? 0)))
        return true
      case "help":
        out(mode.interactive ? `${commandsHelp}\n${keysHelp}` : commandsHelp)
        return true
      case "quit":
      case "exit":
        return false
      default: {
        state.failures += 1
        const meant = didYouMean(cmd, commandNames)
        const hint = state.current === undefined && !word!.startsWith("/") ? "; to post, join a channel first: join NAME" : ""
        out(json ? JSON.stringify({ type: "error", error: `unknown command '${cmd}'` }) : `unknown command '${safe(cmd)}'${meant === undefined ? "" : `; did you mean '${meant}'?`} (help lists them${hint})`)
        return true
      }
    }
  }).pipe(
    Effect.catchTag("ClientError", (e) =>
      Effect.sync(() => {
        state.failures += 1
        const text = e.reason === "Unreachable" ? `no answer from the cluster (${e.message})` : e.message
        out(mode.json ? JSON.stringify({ type: "error", error: text }) : `error: ${safe(text)}`)
        return true
      }),
    ),
  )

/** The most of one paste that is kept (a post is at most a few KB anyway). */
const pasteCharsMax = 100_000

/** The terminal while the client runs in one: raw mode, bracketed paste, our line editor. */
const startTerminal = (options: {
  readonly prompt: () => string
  readonly historyFile: string | undefined
  readonly words: () => Words & { readonly plainIsText: boolean }
  readonly onLine: (line: string) => void
  readonly onQuit: () => void
  readonly onTab: () => void
  /** What was printed before. */
  readonly printed: ReadonlyArray<string>
}) => {
  const { stdin, stdout } = process
  const write = (s: string) => {
    if (stdout.writable) stdout.write(s)
  }
  const screen = new Screen(write, () => stdout.columns || 80, () => stdout.rows || 24)
  screen.remember(options.printed)
  const editor = new LineEditor(loadHistory(options.historyFile))
  let paste: string | undefined
  let asking: Array<string> | undefined
  let open = true
  const render = () => {
    if (!open) return
    if (asking !== undefined) return screen.render({ prompt: `paste ${asking.length} lines? y: send them as ${asking.length} lines, j: join them into one line, n: drop them `, text: [], cursor: 0 })
    screen.render(editor.view(options.prompt()))
  }
  const submit = (line: string, echo: boolean) => {
    if (line.trim() !== "") {
      editor.remember(line)
      appendHistory(options.historyFile, line)
    }
    if (echo) screen.print(`${options.prompt()}${cleanInput(line)}`)
    options.onLine(line)
  }
  /** Commands are echoed above (so their answer has a question); a post comes back on its channel instead. */
  const isPost = (line: string) => options.words().plainIsText && (!line.trim().startsWith("/") || line.trim().startsWith("//"))
  const tab = () => {
    options.onTab()
    const w = options.words()
    const before = editor.before()
    const { start, candidates } = complete(before, w, w.plainIsText)
    if (candidates.length === 0) return
    const token = before.slice(start)
    if (candidates.length === 1) return editor.replaceBefore(start, `${candidates[0]!} `)
    const shared = commonPrefix(candidates)
    if (shared.length > token.length) return editor.replaceBefore(start, shared)
    screen.print(candidates.slice(0, 60).map(cleanInput).join("  ") + (candidates.length > 60 ? `  (${candidates.length - 60} more)` : ""))
  }
  const quit = () => {
    if (!open) return
    options.onQuit()
  }
  const onKey = (str: string | undefined, key: Key | undefined) => {
    const k: Key = key ?? { sequence: str }
    if (k.name === "paste-start") {
      paste = ""
      return
    }
    if (paste !== undefined) {
      if (k.name !== "paste-end") {
        // Bounded: what is past pasteCharsMax is dropped.
        if (paste.length < pasteCharsMax) paste += k.name === "return" || k.name === "enter" ? "\n" : (str ?? "")
        return
      }
      const lines = paste.replace(/\r\n?/g, "\n").replace(/\n+$/, "").split("\n")
      paste = undefined
      if (lines.length <= 1) editor.insert(lines[0] ?? "")
      else asking = lines
      return render()
    }
    if (asking !== undefined) {
      const lines = asking
      asking = undefined
      if (k.name === "y") for (const l of lines) submit(l, !isPost(l))
      else if (k.name === "j") editor.insert(lines.map((l) => l.trim()).join(" "))
      else screen.print(`(paste of ${lines.length} lines dropped)`)
      return render()
    }
    const action = editor.key(str, k)
    switch (action.type) {
      case "submit":
        submit(action.line, !isPost(action.line))
        break
      case "interrupt":
      case "eof":
        return quit()
      case "complete":
        tab()
        break
      case "clear-screen":
        screen.clearScreen()
        break
      default:
        break
    }
    render()
  }
  const onResize = () => open && screen.resize()
  const restore = () => {
    if (!open) return
    open = false
    stdin.off("keypress", onKey)
    stdout.off("resize", onResize)
    screen.finish()
    write("\x1b[?2004l")
    if (stdin.isTTY) stdin.setRawMode(false)
    stdin.pause()
  }
  emitKeypressEvents(stdin)
  stdin.setRawMode(true)
  stdin.on("keypress", onKey)
  stdout.on("resize", onResize)
  // However the process ends, the terminal is given back as it was.
  process.once("exit", restore)
  stdin.resume()
  write("\x1b[?2004h")
  render()
  return {
    print: (line: string) => (open ? screen.print(line) : write(`${line}\n`)),
    render,
    restore,
  }
}

export const runClientCli = (argv: ReadonlyArray<string>) => {
  const p = parse(argv, spec)
  if (p.flags.help) {
    console.log(`${usage("client", "the interactive client", spec)}\n\n${commandsHelp}\n\n${keysHelp}`)
    return
  }
  const json = p.flags.json === true
  const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true && !json
  const config = {
    ...defaultClientConfig,
    broker: endpoint(p.values.broker!, Ports.brokerFrontend),
    proxy: endpoint(p.values.proxy!, Ports.proxyBackend),
    requestTimeoutMs: int(p.values.timeout, "timeout", 1),
  }
  const password = p.values.password === "" ? undefined : p.values.password
  const mode: Mode = { json, interactive, password }
  const historyFile = p.flags["no-history"] === true ? undefined : historyPath(process.env, p.values["history-file"])
  const state = newState()
  const program = Effect.gen(function* () {
    const client = yield* makeClient(config)
    const lines = yield* Queue.unbounded<string | null>()
    let terminal: ReturnType<typeof startTerminal> | undefined
    const printed: Array<string> = []
    const out: Out = (line) => {
      if (terminal !== undefined) return terminal.print(line)
      if (interactive) printed.push(...line.split("\n"))
      if (process.stdout.writable) process.stdout.write(`${line}\n`)
    }
    if (!interactive) {
      const rl = createInterface({ input: process.stdin, terminal: false })
      yield* Effect.addFinalizer(() => Effect.sync(() => rl.close()))
      rl.on("line", (l) => Effect.runFork(Queue.offer(lines, l)))
      rl.on("close", () => Effect.runFork(Queue.offer(lines, null)))
    }

    yield* Effect.forkScoped(
      Effect.forever(
        Effect.map(Queue.take(client.publications), (pub) => {
          state.users.add(pub.service === "publish" ? pub.user : pub.src)
          out(json ? JSON.stringify({ type: pub.service, ...pub, meta: undefined, timestamp: pub.meta.timestampMs, clock: pub.meta.clock }) : showPublication(pub))
        }),
      ),
    )
    if (interactive) {
      // Say "connected" only once the cluster has answered (ZeroMQ connects lazily: a broker that is not there is silence).
      const probe = yield* Effect.result(client.channels())
      if (probe._tag === "Failure") {
        out(`no answer from ${config.broker} (${config.attemptsMax} tries of ${config.requestTimeoutMs} ms): is the cluster running (bulletin up)? Or give its address: --broker HOST --proxy HOST`)
        process.exitCode = 1
        return
      }
      const names = listNames(probe.success, "channels")
      if (names !== undefined) state.channels = new Set(names)
    }
    if (p.values.user !== undefined) yield* execute(client, `login ${p.values.user}`, out, mode, state)
    if (interactive) {
      out(`connected to ${config.broker}; type help for commands, join CHANNEL to talk in one`)
      yield* Effect.forkScoped(refreshNames(client, state))
      const refreshing = { running: false }
      terminal = startTerminal({
        prompt: () => promptOf(state),
        historyFile,
        printed,
        words: () => ({ commands: commandNames, channels: [...state.channels, ...state.joined], users: [...state.users], plainIsText: state.current !== undefined }),
        onLine: (l) => void Effect.runFork(Queue.offer(lines, l)),
        onQuit: () => Effect.runFork(Queue.offer(lines, null)),
        // Names for completion are read again now and then (at most every 30 s, when Tab is pressed).
        onTab: () => {
          if (refreshing.running || Date.now() - state.listedAt < 30_000) return
          refreshing.running = true
          Effect.runFork(Effect.ensuring(refreshNames(client, state), Effect.sync(() => (refreshing.running = false))))
        },
      })
      const t = terminal
      yield* Effect.addFinalizer(() => Effect.sync(() => t.restore()))
    }
    for (;;) {
      const line = yield* Queue.take(lines)
      if (line === null) break
      const goOn = yield* execute(client, line, out, mode, state)
      if (!goOn) break
      terminal?.render()
    }
    if (!interactive) {
      yield* Effect.sleep(Duration.millis(int(p.values.linger, "linger")))
      // A script (commands on stdin, --json or not) learns from the exit status whether every command worked.
      if (state.failures > 0) process.exitCode = 1
    }
  })
  runMain(Effect.scoped(program).pipe(Effect.provide(layerZmq())))
}
