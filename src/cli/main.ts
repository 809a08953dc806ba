import { readFileSync } from "node:fs"
import { isLogFormat, isLogLevel } from "../actors/logSettings.ts"
import { ExitCode, type Spec, UsageError, didYouMean, int, parse, usage } from "./options.ts"

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
  keygen    make a cluster key (every cluster role needs it: CURVE between them)
  bot       a bot that posts to random channels forever
  bench     benchmarks against raw ZeroMQ on this machine
  version   the version of bulletin (also --version, -V)

Every command also takes --log-level debug|info|warn|error (BULLETIN_LOG_LEVEL;
Berkeley rounds and clock adjustments are at debug) and --log-format text|json
(BULLETIN_LOG_FORMAT); NO_COLOR turns colours off.

Exit codes: 0 ok, 1 failure, 2 usage error, 3 not healthy (bulletin health).
`

/** The flags every command takes, before or after its name: set as environment variables (so the processes `up` starts share them). */
const globalFlags = (argv: ReadonlyArray<string>): Array<string> => {
  const rest: Array<string> = []
  const names: Record<string, string> = { "--log-level": "BULLETIN_LOG_LEVEL", "--log-format": "BULLETIN_LOG_FORMAT" }
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
  const level = process.env.BULLETIN_LOG_LEVEL
  if (level !== undefined && !isLogLevel(level)) throw new UsageError(`--log-level must be debug, info, warn or error, got '${level}'`)
  const format = process.env.BULLETIN_LOG_FORMAT
  if (format !== undefined && !isLogFormat(format)) throw new UsageError(`--log-format must be text or json, got '${format}'`)
  return rest
}

const commands = ["up", "client", "broker", "proxy", "reference", "server", "sim", "monitor", "dashboard", "inspector", "health", "status", "keygen", "bot", "bench", "help", "version"]

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
      const { values } = show({ port: { env: "INSPECT_PORT", default: "8080", help: "port of the relay (HTTP page and WebSocket)" } }, "the XState inspector relay: roles started with --inspect send to it")
      const { startInspectorRelay } = await import("./inspect.ts")
      const relay = startInspectorRelay(int(values.port, "port"))
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
    case undefined:
    case "help":
    case "--help":
    case "-h":
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
