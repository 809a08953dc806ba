import { readFileSync } from "node:fs"
import { isLogFormat, isLogLevel } from "../actors/logSettings.ts"
import { configuredGlobal, didYouMean, ExitCode, int, loadConfig, parse, portNumber, type Spec, usage, UsageError } from "./options.ts"

const help = `bulletin: a distributed message board over ZeroMQ

Usage: bulletin COMMAND [options]     (bulletin COMMAND --help for its options)

Commands:
  up        start the whole topology locally: broker, proxy, reference, 3 servers, 2 bots
  client    the interactive client (also reads commands from stdin)
  broker    ROUTER 5555 / DEALER 5556, round-robin over servers
  proxy     XSUB 5557 / XPUB 5558 for publications
  reference ranks, heartbeats and the server list (REP 5559)
  server    a replicated server with its own data folder
  sim       run the deterministic cluster simulator (--seed S replays one run)
  monitor   watch every server's machines, clock, replication and load live
  dashboard the same in a web page: live state charts, clocks, lag, elections
  inspector relay for the hosted XState inspector (roles started with --inspect)
  health    exit 0 if a role answers (the containers' healthcheck)
  status    a running cluster's servers: rank, address, whom each follows, clock
  sub       tail publications: bulletin sub general @ana (exact topics, --json, --count N)
  export    a consistent snapshot of one server's store as JSON lines (the server may run)
  import    restore a snapshot into an empty data folder (all of it or nothing)
  keygen    make a cluster key (every cluster role needs it: CURVE between them)
  bot       a bot that posts to random channels forever
  bench     benchmarks against raw ZeroMQ on this machine
  version   the version of bulletin (also --version, -V)
  completion a shell completion script: bulletin completion bash|zsh|fish

Every command also takes --log-level debug|info|warn|error (BULLETIN_LOG_LEVEL;
Berkeley rounds and clock adjustments are at debug) and --log-format text|json
(BULLETIN_LOG_FORMAT); NO_COLOR turns colours off.

Every option is also an environment variable: BULLETIN_ and the flag's name
(--bot-rate: BULLETIN_BOT_RATE; the older names compose uses, like BROKER_ADDR,
still work), and can be set in a config file (bulletin help config).

Exit codes: 0 ok, 1 failure, 2 usage error, 3 not healthy (bulletin health).
`

const configHelp = `bulletin's config file: optional; flags win over the environment, which wins over the file.

Where: --config FILE or BULLETIN_CONFIG=FILE (BULLETIN_CONFIG= for none), else
$XDG_CONFIG_HOME/bulletin/config (~/.config/bulletin/config) if it exists.

Lines of 'flag = value' (the flag's name without --; quote a value with "..."
to keep a #); # starts a comment. Settings before any [section] apply to every
command that has that flag; those under [COMMAND] to that command only, and win.
A setting a command's section names but the command does not have is an error.

  # ~/.config/bulletin/config
  broker = 10.0.0.5
  proxy = 10.0.0.5
  log-level = warn
  [client]
  user = ana
  [server]
  data-root = /var/lib/bulletin
`

/** The flags every command takes, before or after its name: set as environment variables (so the processes `up` starts share them). */
const globalFlags = (argv: ReadonlyArray<string>): Array<string> => {
  const rest: Array<string> = []
  const names: Record<string, string> = { "--log-level": "BULLETIN_LOG_LEVEL", "--log-format": "BULLETIN_LOG_FORMAT", "--config": "BULLETIN_CONFIG" }
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split("=", 2) as [string, string | undefined]
    const env = names[flag]
    if (env === undefined) {
      rest.push(argv[i]!)
      continue
    }
    const value = inline ?? argv[++i]
    if (value === undefined) throw new UsageError(`${flag} needs a value`)
    process.env[env] = value
  }
  return rest
}

/** The global settings' checks, once the config file (which may set them too) is read. */
const checkGlobals = () => {
  for (const [flag, env] of [["log-level", "BULLETIN_LOG_LEVEL"], ["log-format", "BULLETIN_LOG_FORMAT"]] as const) {
    const fromFile = configuredGlobal(flag)
    if (process.env[env] === undefined && fromFile !== undefined) process.env[env] = fromFile
  }
  const level = process.env.BULLETIN_LOG_LEVEL
  if (level !== undefined && !isLogLevel(level)) throw new UsageError(`--log-level must be debug, info, warn or error, got '${level}'`)
  const format = process.env.BULLETIN_LOG_FORMAT
  if (format !== undefined && !isLogFormat(format)) throw new UsageError(`--log-format must be text or json, got '${format}'`)
}

const commands = ["up", "client", "broker", "proxy", "reference", "server", "sim", "monitor", "dashboard", "inspector", "health", "status", "sub", "export", "import", "keygen", "bot", "bench", "help", "version", "completion"]

/** The commands and their one-line summaries, as the help lists them (for completion). */
const summaries = () =>
  help
    .split("\n")
    .map((l) => /^ {2}([a-z]+) +(.+)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && commands.includes(m[1]!) && m[1] !== "version")
    .map((m) => ({ name: m[1]!, summary: m[2]! }))

/** package.json's version: two folders up from src/cli, three from dist/src/cli. */
const version = () => {
  for (const up of ["../../package.json", "../../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), "utf8")) as { name?: string; version?: string }
      if (pkg.name === "bulletin") return pkg.version ?? "unknown"
    } catch {
      // not there: try the next
    }
  }
  return "unknown"
}

// A reader that went away (`bulletin monitor | head -1`) is the end of the output, not an error.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(ExitCode.ok)
  throw e
})

const main = async (argvWithGlobals: ReadonlyArray<string>) => {
  const [command, ...args] = globalFlags(argvWithGlobals)
  if (command !== undefined && commands.includes(command)) loadConfig(command, commands)
  checkGlobals()
  const show = (spec: Spec, summary: string) => {
    const p = parse(args, spec)
    if (p.flags.help) {
      console.log(usage(command!, summary, spec))
      process.exit(0)
    }
    return p
  }
  switch (command) {
    case "broker":
    case "proxy":
    case "keygen":
    case "reference":
    case "server":
    case "bot": {
      // Loaded only for the command that runs (a role's modules cost a start its time).
      const { runRole } = await import("./roles.ts")
      return runRole(command, args)
    }
    case "monitor": {
      const { runMonitor } = await import("./monitor.ts")
      return runMonitor(args)
    }
    case "inspector": {
      const { startInspectorRelay, spec } = await import("./inspect.ts")
      const { values } = show(spec, "the XState inspector relay: roles started with --inspect send to it")
      const relay = startInspectorRelay(portNumber(values.port, "port"))
      console.log(`inspector: relay on ${relay.ws}; open ${relay.url} in a browser (the Stately inspector it embeds is loaded from stately.ai: this page needs the internet; \`bulletin dashboard\` does not)`)
      return
    }
    case "dashboard": {
      const { runDashboard } = await import("./dashboard.ts")
      return runDashboard(args)
    }
    case "health": {
      const { runHealth } = await import("./health.ts")
      return runHealth(args)
    }
    case "status": {
      const { runStatus } = await import("./status.ts")
      return runStatus(args)
    }
    case "sub": {
      const { runSub } = await import("./sub.ts")
      return runSub(args)
    }
    case "export": {
      const { runExport } = await import("./export.ts")
      return runExport(args)
    }
    case "import": {
      const { runImport } = await import("./export.ts")
      return runImport(args)
    }
    case "sim": {
      const { runSimCli } = await import("./sim.ts")
      return runSimCli(args)
    }
    case "client": {
      const { runClientCli } = await import("./client.ts")
      return runClientCli(args)
    }
    case "up": {
      const { runUp } = await import("./up.ts")
      return runUp(args)
    }
    case "bench": {
      const { runBench } = await import("../../bench/bench.ts")
      return runBench(args)
    }
    case "completion":
    case "--completions": {
      if (args[0] === "-h" || args[0] === "--help") return console.log("bulletin completion bash|zsh|fish: print a completion script, e.g.\n  bulletin completion bash > ~/.local/share/bash-completion/completions/bulletin\n  bulletin completion zsh > \"${fpath[1]}/_bulletin\"")
      const { completionScript } = await import("./completion.ts")
      process.stdout.write(await completionScript(args[0], summaries()))
      return
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      if (args[0] === "config") return console.log(configHelp)
      if (args[0] !== undefined && commands.includes(args[0]) && args[0] !== "help") return main([args[0], "--help"])
      console.log(help)
      return
    case "version":
    case "--version":
    case "-V":
      console.log(`bulletin ${version()}`)
      return
    default: {
      const meant = didYouMean(command, commands)
      throw new UsageError(`unknown command '${command}'${meant === undefined ? "" : `; did you mean '${meant}'?`} (bulletin help lists them)`)
    }
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  console.error(`bulletin: ${(e as Error).message ?? String(e)}`)
  process.exit(e instanceof UsageError ? ExitCode.usage : ExitCode.failure)
})
