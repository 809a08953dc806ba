import { request as httpRequest } from "node:http"
import { connect } from "node:net"
import type { ClusterKey } from "../transport/keys.ts"
import { statSync } from "node:fs"
import { ExitCode, Ports, type Spec, UsageError, botAliveFile, botAliveMs, endpoint, parse, usage } from "./options.ts"

/**
 * `bulletin health ROLE`: the container healthcheck. Exit 0 when the role in
 * this container answers: broker and proxy accept TCP connections on both
 * their ports; the reference answers `list`; a server answers `ping` on its
 * peer port; the dashboard answers HTTP; a bot has had a post acknowledged
 * in the last 30 s (its liveness file). A client has nothing to probe (always healthy).
 */
export const spec: Spec = {
  host: { env: "HEALTH_HOST", default: "127.0.0.1", help: "address the role listens on, seen from inside its container" },
  timeout: { default: "2000", help: "milliseconds to wait for an answer" },
  key: { env: "BULLETIN_KEY_FILE", help: "the cluster's key file, to probe the reference and peer ports (or BULLETIN_CLUSTER_KEY)" },
  open: { boolean: true, env: "BULLETIN_OPEN", help: "the cluster runs in open mode" },
  port: { env: "DASHBOARD_PORT", default: "5580", help: "the dashboard's port (health dashboard)" },
  "alive-file": { env: "BOT_ALIVE_FILE", default: botAliveFile, help: "the bot's liveness file (health bot)" },
}

/** The bot's last acknowledged post is recent: its liveness file was touched within `botAliveMs`. */
const recentlyTouched = (file: string) => {
  let mtimeMs: number
  try {
    mtimeMs = statSync(file).mtimeMs
  } catch {
    throw new Error(`${file}: no post acknowledged yet`)
  }
  const age = Date.now() - mtimeMs
  if (age > botAliveMs) throw new Error(`last post acknowledged ${Math.round(age / 1000)} s ago (${file})`)
}

const tcpOpen = (host: string, port: number, timeoutMs: number) =>
  new Promise<void>((done, fail) => {
    const socket = connect({ host, port })
    const t = setTimeout(() => {
      socket.destroy()
      fail(new Error(`${host}:${port}: no connection within ${timeoutMs} ms`))
    }, timeoutMs)
    socket.once("connect", () => {
      clearTimeout(t)
      socket.end()
      done()
    })
    socket.once("error", (e) => {
      clearTimeout(t)
      fail(new Error(`${host}:${port}: ${e.message}`))
    })
  })

/** An HTTP GET answered 200 within the timeout (the dashboard checks Host: we send its own). */
const httpOk = (host: string, port: number, path: string, timeoutMs: number) =>
  new Promise<void>((done, fail) => {
    const req = httpRequest({ host, port, path, headers: { host: `${host}:${port}` }, timeout: timeoutMs }, (res) => {
      res.resume()
      if (res.statusCode === 200) done()
      else fail(new Error(`http://${host}:${port}${path}: status ${res.statusCode}`))
    })
    req.on("timeout", () => req.destroy(new Error(`http://${host}:${port}${path}: no answer within ${timeoutMs} ms`)))
    req.on("error", (e) => fail(e))
    req.end()
  })

// Loaded only for the roles probed over ZeroMQ: the native module is most of a start's cost.
const answers = async (at: string, service: string, timeoutMs: number, key: ClusterKey | undefined) => {
  const { askOnce } = await import("./ask.ts")
  await askOnce(at, service, { timeoutMs, key, from: "healthcheck" })
}

export const runHealth = async (argv: ReadonlyArray<string>) => {
  const p = parse(argv, spec)
  const role = p.rest[0]
  if (p.flags.help || role === undefined) {
    console.log(usage("health ROLE", "exit 0 if the role (broker, proxy, reference, server, dashboard, bot, client) answers, 3 if it does not", spec))
    process.exit(role === undefined && !p.flags.help ? 2 : 0)
  }
  const host = p.values.host!
  const timeoutMs = Number(p.values.timeout)
  // The role's own key (same flags and variables as the role), if it runs with one.
  const key = async () => {
    const { securityFrom } = await import("../transport/keys.ts")
    const sec = p.flags.open ? undefined : p.values.key !== undefined || process.env.BULLETIN_CLUSTER_KEY ? securityFrom({ open: false, keyFile: p.values.key, env: process.env }) : undefined
    return sec?.mode === "curve" ? sec.key : undefined
  }
  const roles = ["broker", "proxy", "reference", "server", "dashboard", "bot", "client"]
  if (!roles.includes(role)) throw new UsageError(`unknown role '${role}' (one of ${roles.join(", ")})`)
  try {
    await probe(role, host, timeoutMs, p.values, key)
  } catch (e) {
    console.error(`${role}: not healthy: ${(e as Error).message ?? String(e)}`)
    process.exit(ExitCode.unhealthy)
  }
  console.log(`${role}: healthy`)
  process.exit(ExitCode.ok)
}

const probe = async (role: string, host: string, timeoutMs: number, values: Record<string, string | undefined>, key: () => Promise<ClusterKey | undefined>) => {
  switch (role) {
    case "broker":
      await Promise.all([tcpOpen(host, Ports.brokerFrontend, timeoutMs), tcpOpen(host, Ports.brokerBackend, timeoutMs)])
      break
    case "proxy":
      await Promise.all([tcpOpen(host, Ports.proxyFrontend, timeoutMs), tcpOpen(host, Ports.proxyBackend, timeoutMs)])
      break
    case "reference":
      await answers(endpoint(host, Ports.reference), "list", timeoutMs, await key())
      break
    case "server":
      await answers(endpoint(host, Ports.peer), "ping", timeoutMs, await key())
      break
    case "dashboard":
      await httpOk(host, Number(values.port), "/api/info", timeoutMs)
      break
    case "bot":
      recentlyTouched(values["alive-file"]!)
      break
    case "client":
      break
  }
}
