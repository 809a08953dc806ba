import { type Spec, int, parse, usage } from "./options.ts"

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
  keygen    make a cluster key (every cluster role needs it: CURVE between them)
  bot       a bot that posts to random channels forever
  bench     benchmarks against raw ZeroMQ on this machine
`

const main = async (argv: ReadonlyArray<string>) => {
  const [command, ...args] = argv
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
    default:
      console.error(`bulletin: unknown command '${command}'\n\n${help}`)
      process.exit(2)
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  console.error(`bulletin: ${(e as Error).message ?? String(e)}`)
  process.exit(2)
})
