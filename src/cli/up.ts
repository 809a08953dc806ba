import { type ChildProcess, spawn } from "node:child_process"
import { mkdirSync } from "node:fs"
import { writeKeyFile } from "../transport/keys.ts"
import { join, resolve } from "node:path"
import { createServer } from "node:net"
import { createInterface } from "node:readline"
import { startLiveDashboard } from "./dashboard.ts"
import type { ControlAction, RoleStatus } from "../dashboard/roles.ts"
import { packageRoot } from "./root.ts"
import { checkConfigFor, configSections, int, parse, portNumber, Ports, type Spec, usage, UsageError } from "./options.ts"

export const spec: Spec = {
  "data-root": { env: "DATA_ROOT", aliases: ["data"], default: "data", help: "folder holding the cluster's key, the reference's ranks and one data folder per server (the same setting as `bulletin server --data-root`)" },
  servers: { default: "3", help: "number of servers" },
  bots: { default: "2", help: "number of bots" },
  "bot-rate": { default: "2", help: "posts per second per bot" },
  host: { default: "127.0.0.1", help: "address of the broker and the proxy" },
  "server-ip-base": { default: "127.0.1.1", help: "first server's loopback address; the next ones count up" },
  inspect: { boolean: true, help: "also run the XState inspector relay and send every server's machines to it (its page needs the internet)" },
  "inspect-port": { env: "INSPECT_PORT", default: "8080", help: "port of the inspector relay" },
  "dashboard-port": { env: "DASHBOARD_PORT", default: "5580", help: "port of the web dashboard (with stop/restart/partition buttons); 'none': no dashboard" },
  "metrics-port": { default: "9464", help: "port of each server's Prometheus endpoint, http://SERVER-ADDRESS:PORT/metrics (each server on its own address); 'none': not served" },
  only: { env: "BULLETIN_ONLY", help: "show only these roles' lines, comma-separated (e.g. server-2,broker); all still run" },
  "dashboard-host": { env: "DASHBOARD_HOST", help: "address the dashboard is served on (default: --host; keep it on loopback: its buttons kill processes)" },
  open: { boolean: true, env: "BULLETIN_OPEN", help: "open mode: no cluster key, no authentication between the roles (warned about in every role's log)" },
}

export interface RoleSpec {
  readonly name: string
  readonly args: ReadonlyArray<string>
  /** A log line that says the role is ready; roles of later phases start once every role before them is ready. */
  readonly ready?: RegExp
  /** Start order: every role of phase n is ready (or `readyTimeoutMs` passed) before phase n+1 starts. */
  readonly phase: number
}

const readyTimeoutMs = 30_000

const bin = join(packageRoot(import.meta.url), "bin", "bulletin.js")
// Role prefixes: no red or yellow (they read as errors and warnings).
const colours = [36, 35, 32, 34, 96, 95, 92, 94, 37]

const nthAddress = (base: string, n: number) => {
  const parts = base.split(".").map(Number)
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`bad address '${base}'`)
  parts[3] = parts[3]! + n
  if (parts[3] > 254) throw new Error(`too many servers for base address ${base}`)
  return parts.join(".")
}

/** The roles `bulletin up` runs, in start order. */
export const topology = (o: { data: string; servers: number; bots: number; botRate: number; host: string; serverIpBase: string; inspectUrl?: string; metricsPort?: number }): Array<RoleSpec> => {
  const roles: Array<RoleSpec> = [
    { name: "broker", args: ["broker", "--host", o.host], ready: /broker: tcp/, phase: 0 },
    { name: "proxy", args: ["proxy", "--host", o.host], ready: /proxy: tcp/, phase: 0 },
    { name: "reference", args: ["reference", "--host", o.host, "--data", resolve(o.data, "reference")], ready: /reference: serving/, phase: 0 },
  ]
  for (let i = 1; i <= o.servers; i++) {
    const name = `server-${i}`
    // Bots wait for every server: until replication catches up missed ops, a
    // server that started after the first writes would not have them.
    roles.push({ name, args: ["server", "--name", name, "--data", resolve(o.data, name), "--host", nthAddress(o.serverIpBase, i - 1), "--broker", o.host, "--proxy", o.host, "--reference", o.host, "--metrics-port", o.metricsPort === undefined ? "none" : String(o.metricsPort), "--metrics-host", nthAddress(o.serverIpBase, i - 1), ...(o.inspectUrl === undefined ? [] : ["--inspect", "--inspect-url", o.inspectUrl])], ready: /serving requests/, phase: 1 })
  }
  for (let i = 1; i <= o.bots; i++) roles.push({ name: `bot-${i}`, args: ["bot", "--broker", o.host, "--proxy", o.host, "--rate", String(o.botRate)], phase: 2 })
  return roles
}


/**
 * Runs each role as a child process, prefixes its output with its name, and
 * restarts it when it dies (back-off doubling to 10 s; reset after 30 s of
 * good health). SIGINT/SIGTERM stop every child, then exit.
 *
 * `control` is fault injection for a person (the dashboard's buttons):
 * `stop` kills a role with SIGKILL (a crash: no goodbye) and keeps it down;
 * `restart` starts it again (killing it first if it runs); `partition`
 * freezes it with SIGSTOP, which the others cannot tell from a silent
 * network partition (its connections stay open, nothing answers, heartbeats
 * stop); `heal` resumes it with SIGCONT.
 */
export const supervise = (
  roles: ReadonlyArray<RoleSpec>,
  onLine: (role: string, line: string) => void = defaultPrinter(),
  onStatus: (roles: ReadonlyArray<RoleStatus>) => void = () => {},
) => {
  let stopping = false
  const children = new Map<string, ChildProcess>()
  const status = new Map<string, RoleStatus>(roles.map((r) => [r.name, { name: r.name, state: "starting", pid: undefined }]))
  const held = new Set<string>()
  /** Killed by `restart`: start again at once, without back-off. */
  const restartNow = new Set<string>()
  const readyWaiters = new Map<string, () => void>()
  const setStatus = (name: string, state: RoleStatus["state"], pid: number | undefined) => {
    status.set(name, { name, state, pid })
    onStatus([...status.values()])
  }
  const start = (role: RoleSpec, colour: number, backoffMs: number) => {
    if (stopping || children.has(role.name)) return
    const startedAt = performance.now()
    const child = spawn(process.execPath, [bin, ...role.args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, FORCE_COLOR: "0" } })
    children.set(role.name, child)
    setStatus(role.name, "running", child.pid)
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on("line", (l) => {
        if (role.ready?.test(l)) readyWaiters.get(role.name)?.()
        onLine(role.name, l)
      })
    }
    child.on("exit", (code, signal) => {
      if (children.get(role.name) === child) children.delete(role.name)
      if (stopping) return
      if (restartNow.delete(role.name)) return start(role, colour, 250)
      if (held.has(role.name)) {
        onLine(role.name, `exited (${signal ?? code}); stopped from the dashboard, not restarting`)
        setStatus(role.name, "stopped", undefined)
        return
      }
      const healthy = performance.now() - startedAt > 30_000
      const next = healthy ? 500 : Math.min(backoffMs * 2, 10_000)
      onLine(role.name, `exited (${signal ?? code}); restarting in ${next} ms`)
      setStatus(role.name, "restarting", undefined)
      setTimeout(() => start(role, colour, next), next).unref()
    })
  }
  const ready = (role: RoleSpec) =>
    role.ready === undefined
      ? Promise.resolve()
      : new Promise<void>((done) => {
          const t = setTimeout(() => {
            onLine(role.name, `not ready after ${readyTimeoutMs} ms; starting the next roles anyway`)
            done()
          }, readyTimeoutMs)
          readyWaiters.set(role.name, () => {
            clearTimeout(t)
            readyWaiters.delete(role.name)
            done()
          })
        })
  const phases = [...new Set(roles.map((r) => r.phase))].sort((a, b) => a - b)
  void (async () => {
    for (const phase of phases) {
      const these = roles.filter((r) => r.phase === phase)
      const waits = these.map(ready)
      for (const r of these) start(r, colours[roles.indexOf(r) % colours.length]!, 250)
      await Promise.all(waits)
    }
  })()
  const stop = () =>
    new Promise<void>((done) => {
      stopping = true
      if (children.size === 0) return done()
      for (const c of children.values()) {
        c.kill("SIGCONT")
        c.kill("SIGTERM")
      }
      const force = setTimeout(() => { for (const c of children.values()) c.kill("SIGKILL") }, 5_000)
      const check = setInterval(() => {
        if (children.size === 0) {
          clearTimeout(force)
          clearInterval(check)
          done()
        }
      }, 50)
    })
  /** Fault injection by a person; returns what was done, throws on a bad request. */
  const control = (name: string, action: ControlAction): string => {
    const role = roles.find((r) => r.name === name)
    if (role === undefined) throw new Error(`no role named '${name}'`)
    if (stopping) throw new Error("shutting down")
    const child = children.get(name)
    const colour = colours[roles.indexOf(role) % colours.length]!
    switch (action) {
      case "stop":
        held.add(name)
        if (child === undefined) {
          setStatus(name, "stopped", undefined)
          return `${name} is not running; it stays down`
        }
        onLine(name, "stopping from the dashboard (SIGKILL)")
        child.kill("SIGCONT")
        child.kill("SIGKILL")
        return `${name} killed (SIGKILL); it stays down until restarted`
      case "restart":
        held.delete(name)
        if (child === undefined) {
          onLine(name, "starting from the dashboard")
          start(role, colour, 250)
          return `${name} started`
        }
        onLine(name, "restarting from the dashboard (SIGKILL, then start)")
        restartNow.add(name)
        child.kill("SIGCONT")
        child.kill("SIGKILL")
        return `${name} killed and started again`
      case "partition":
        if (child === undefined) throw new Error(`${name} is not running`)
        onLine(name, "partitioned from the dashboard (SIGSTOP: frozen, connections open, silent)")
        child.kill("SIGSTOP")
        setStatus(name, "frozen", child.pid)
        return `${name} frozen (SIGSTOP): to the others, a silent partition`
      case "heal":
        if (child === undefined) throw new Error(`${name} is not running`)
        child.kill("SIGCONT")
        onLine(name, "healed from the dashboard (SIGCONT)")
        setStatus(name, "running", child.pid)
        return `${name} resumed (SIGCONT)`
    }
  }
  return { stop, children, control, status: () => [...status.values()] }
}

/** Each role's lines, prefixed with its name (coloured on a terminal, unless NO_COLOR); only the roles in `only`, if given. */
const defaultPrinter = (only?: ReadonlySet<string>) => {
  const colourOf = new Map<string, number>()
  const tty = process.stdout.isTTY === true && (process.env.NO_COLOR ?? "") === ""
  return (role: string, line: string) => {
    if (only !== undefined && !only.has(role)) return
    if (!colourOf.has(role)) colourOf.set(role, colours[colourOf.size % colours.length]!)
    const tag = role.padEnd(9)
    process.stdout.write(tty ? `\x1b[${colourOf.get(role)}m${tag}\x1b[0m| ${line}\n` : `${tag}| ${line}\n`)
  }
}

/** Whether something already listens on host:port (a bind that fails with EADDRINUSE). */
const inUse = (host: string, port: number) =>
  new Promise<boolean>((done) => {
    const probe = createServer()
    probe.once("error", (e: NodeJS.ErrnoException) => done(e.code === "EADDRINUSE"))
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => done(false)))
  })

/**
 * Before anything starts: every port this topology binds is free, or one
 * line says which is taken and the flag that moves it (a second `up` on the
 * same addresses would otherwise start roles that retry binding for ever).
 */
const checkPorts = async (o: { host: string; serverIpBase: string; servers: number; dashboard: { host: string; port: number } | undefined; metricsPort?: number | undefined }) => {
  const wanted: Array<{ host: string; port: number; what: string; flag: string }> = [
    ...[Ports.brokerFrontend, Ports.brokerBackend].map((port) => ({ host: o.host, port, what: "broker", flag: "--host" })),
    ...[Ports.proxyFrontend, Ports.proxyBackend].map((port) => ({ host: o.host, port, what: "proxy", flag: "--host" })),
    { host: o.host, port: Ports.reference, what: "reference", flag: "--host" },
    ...Array.from({ length: o.servers }, (_, i) => ({ host: nthAddress(o.serverIpBase, i), port: Ports.peer, what: `server-${i + 1}'s peer port`, flag: "--server-ip-base" })),
    ...(o.dashboard === undefined ? [] : [{ ...o.dashboard, what: "the dashboard", flag: "--dashboard-port (or --dashboard-port none)" }]),
    ...(o.metricsPort === undefined ? [] : Array.from({ length: o.servers }, (_, i) => ({ host: nthAddress(o.serverIpBase, i), port: o.metricsPort!, what: `server-${i + 1}'s metrics`, flag: "--metrics-port (or --metrics-port none)" }))),
  ]
  for (const w of wanted) {
    if (await inUse(w.host, w.port)) {
      throw new Error(`${w.host}:${w.port} (${w.what}) is already in use, by another \`bulletin up\`? Stop it, or move this one with ${w.flag}`)
    }
  }
}

export const runUp = async (argv: ReadonlyArray<string>) => {
  const p = parse(argv, spec)
  if (p.flags.help) return console.log(usage("up", "the whole topology on this machine", spec))
  // DATA_DIR used to be up's root too: now it is only one server's folder. Say so rather than start an empty cluster in ./data.
  if (process.env.DATA_DIR !== undefined && process.env.DATA_DIR !== "" && p.values["data-root"] === spec["data-root"]!.default) {
    throw new UsageError(`DATA_DIR is one server's own folder, not up's: the folder of the whole cluster is --data-root (DATA_ROOT or BULLETIN_DATA_ROOT=${process.env.DATA_DIR}); unset DATA_DIR`)
  }
  // The roles up starts read the config file too: a mistake in their sections stops up now, not every child in a restart loop.
  const children = ["broker", "proxy", "reference", "server", "bot"] as const
  if (configSections().some((s) => (children as ReadonlyArray<string>).includes(s))) {
    const { specs } = await import("./roles.ts")
    for (const c of children) checkConfigFor(c, specs[c])
  }
  let relay: { url: string; ws: string; stop: () => void } | undefined
  if (p.flags.inspect) {
    const { startInspectorRelay } = await import("./inspect.ts")
    relay = startInspectorRelay(portNumber(p.values["inspect-port"], "inspect-port"))
    console.log(`bulletin up: XState inspector relay on ${relay.ws}; open ${relay.url} (the Stately inspector it embeds needs the internet)`)
  }
  const metricsPort = p.values["metrics-port"] === "none" ? undefined : int(p.values["metrics-port"], "metrics-port", 1)
  if (metricsPort !== undefined && (!Number.isInteger(metricsPort) || metricsPort > 65_535)) throw new UsageError(`--metrics-port must be a port (1-65535) or 'none', got '${p.values["metrics-port"]}'`)
  const roles = topology({
    data: p.values["data-root"]!,
    servers: int(p.values.servers, "servers", 1),
    bots: int(p.values.bots, "bots"),
    botRate: int(p.values["bot-rate"], "bot-rate"),
    host: p.values.host!,
    serverIpBase: p.values["server-ip-base"]!,
    inspectUrl: relay?.ws,
    metricsPort,
  })
  const dashboardPort = p.values["dashboard-port"] === "none" ? undefined : portNumber(p.values["dashboard-port"], "dashboard-port")
  const dashboardHost = p.values["dashboard-host"] ?? p.values.host!
  await checkPorts({ host: p.values.host!, serverIpBase: p.values["server-ip-base"]!, servers: int(p.values.servers, "servers", 1), dashboard: dashboardPort === undefined ? undefined : { host: dashboardHost, port: dashboardPort }, metricsPort })
  console.log(`bulletin up: ${roles.map((r) => r.name).join(", ")}; data in ${resolve(p.values["data-root"]!)}`)
  // Every link between the roles is authenticated with the cluster's key: made on the first start, kept in the data folder.
  if (p.flags.open) process.env.BULLETIN_OPEN = "1"
  else {
    mkdirSync(p.values["data-root"]!, { recursive: true })
    const keyFile = resolve(p.values["data-root"]!, "cluster.key")
    const { created } = writeKeyFile(keyFile, true)
    process.env.BULLETIN_KEY_FILE = keyFile
    delete process.env.BULLETIN_CLUSTER_KEY
    console.log(`bulletin up: cluster links authenticated with ${created ? "a new key" : "the key"} in ${keyFile}`)
  }
  console.log(`connect a client with: npx bulletin client --broker ${p.values.host} --proxy ${p.values.host}   (Ctrl-C stops everything)`)
  if (metricsPort !== undefined) {
    const servers = roles.filter((r) => r.args[0] === "server").map((r, i) => `${r.name} http://${nthAddress(p.values["server-ip-base"]!, i)}:${metricsPort}/metrics`)
    console.log(`bulletin up: Prometheus metrics at ${servers.join(", ")}`)
  }
  let dashboard: Awaited<ReturnType<typeof startLiveDashboard>> | undefined
  const only = p.values.only === undefined ? undefined : new Set(p.values.only.split(",").map((r) => r.trim()).filter((r) => r !== ""))
  if (only !== undefined) {
    const unknown = [...only].filter((r) => !roles.some((x) => x.name === r) && r !== "dashboard")
    if (unknown.length > 0) throw new UsageError(`--only: no role named ${unknown.join(", ")} (roles: ${roles.map((r) => r.name).join(", ")}, dashboard)`)
  }
  const printer = defaultPrinter(only)
  const { stop, control, status } = supervise(roles, printer, (s) => dashboard?.hub.roles(s))
  if (dashboardPort !== undefined) {
    startLiveDashboard({ proxy: p.values.host!, host: dashboardHost, port: dashboardPort, control, title: "bulletin up" })
      .then((d) => {
        dashboard = d
        d.hub.roles(status())
        printer("dashboard", `open ${d.url} to watch the cluster (and stop, restart or partition a server)`)
      })
      .catch((e: unknown) => printer("dashboard", `not started: ${(e as Error).message} (choose another with --dashboard-port)`))
  }
  let signalled = false
  const shutdown = () => {
    if (signalled) process.exit(130)
    signalled = true
    console.log("bulletin up: stopping")
    relay?.stop()
    void Promise.all([stop(), dashboard?.close()]).then(() => process.exit(0))
  }
  process.on("SIGINT", shutdown)
  process.on("SIGTERM", shutdown)
}
