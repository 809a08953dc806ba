import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { parse as parseYaml } from "yaml"
import { type Proc, spawnBulletin, stopAll, tempDir } from "../support/procs.ts"

/**
 * compose.yaml and the Dockerfile, without a Docker engine: Debian's
 * docker-compose validates the file, and the containers' own commands
 * (entrypoint + command + environment, read from `docker-compose config`)
 * run here as processes. Only what Docker's network would provide is
 * replaced: service host names map to loopback addresses, and /data to a
 * temporary folder.
 */
afterAll(stopAll)

const root = resolve(import.meta.dirname, "../..")

interface Service {
  readonly command?: ReadonlyArray<string>
  readonly environment?: Record<string, string>
  readonly deploy?: { readonly replicas?: number }
  readonly healthcheck?: { readonly test: ReadonlyArray<string> }
  readonly hostname?: string
  readonly container_name?: string
  readonly depends_on?: Record<string, { readonly condition: string }>
  readonly volumes?: ReadonlyArray<string | { readonly source: string; readonly target: string }>
  readonly stdin_open?: boolean
  readonly tty?: boolean
  readonly restart?: string
  readonly ports?: ReadonlyArray<unknown>
  readonly profiles?: ReadonlyArray<string>
}

const config = () => {
  const out = execFileSync("docker-compose", ["-f", join(root, "compose.yaml"), "config"], { cwd: root, encoding: "utf8", timeout: 30_000 })
  return parseYaml(out) as { services: Record<string, Service>; volumes: Record<string, unknown> }
}

const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8")
const instruction = (name: string) => dockerfile.split("\n").filter((l) => l.startsWith(`${name} `))

describe("compose.yaml", () => {
  it("is accepted by docker-compose and describes the standard 9 containers, the dashboard and the one-shot keys service", () => {
    const { services, volumes } = config()
    const servers = ["server-1", "server-2", "server-3"]
    expect(Object.keys(services).sort()).toEqual(["bot", "broker", "client", "dashboard", "keys", "proxy", "reference", ...servers])
    const containers = Object.values(services).reduce((n, s) => n + (s.deploy?.replicas ?? 1), 0)
    expect(containers).toBe(11)
    // The dashboard is published on the host's loopback only: no login in front of it.
    expect(JSON.stringify(services.dashboard!.ports)).toMatch(/127\.0\.0\.1/)
    expect(services.bot!.deploy?.replicas).toBe(2)
    // Host names as in PROTOCOL.md; servers named server-1..3 (stable across restarts: the dashboard and logs show them).
    expect([services.broker!.hostname, services.proxy!.hostname, services.reference!.hostname]).toEqual(["broker", "proxy", "reference"])
    expect(servers.map((s) => services[s]!.hostname)).toEqual(servers)
    for (const s of servers) expect(services[s]!.container_name).toBeUndefined()
    // A healthcheck per role that has something to check, and start order on health.
    for (const role of ["broker", "proxy", "reference", "dashboard", "bot"]) expect(services[role]!.healthcheck?.test.slice(-2)).toEqual(["health", role])
    for (const s of servers) {
      expect(services[s]!.healthcheck?.test.slice(-2)).toEqual(["health", "server"])
      expect(services[s]!.depends_on).toEqual({ broker: { condition: "service_healthy" }, proxy: { condition: "service_healthy" }, reference: { condition: "service_healthy" } })
    }
    for (const s of servers) expect(services.bot!.depends_on?.[s]?.condition).toBe("service_healthy")
    // The client is interactive and attachable, and not started by `up` (it needs a terminal).
    expect([services.client!.stdin_open, services.client!.tty, services.client!.restart]).toEqual([true, true, "no"])
    expect(services.client!.profiles).toEqual(["client"])
    // Named volumes: one per server.
    expect(Object.keys(volumes).sort()).toEqual(["cluster-key", "reference-data", "server-1-data", "server-2-data", "server-3-data"])
    for (const s of servers) expect(JSON.stringify(services[s]!.volumes)).toContain(`${s}-data`)
    // Every cluster role reads the cluster's key, made once by the one-shot `keys` service.
    for (const role of ["broker", "proxy", "reference", ...servers]) expect(services[role]!.environment?.BULLETIN_KEY_FILE).toBe("/keys/cluster.key")
    for (const role of ["broker", "proxy", "reference"]) expect(services[role]!.depends_on?.keys?.condition).toBe("service_completed_successfully")
    expect(services.keys!.command).toEqual(["keygen", "--if-missing"])
    for (const s of servers) {
      expect(services[s]!.environment?.DATA_ROOT).toBe("/data")
      expect(services[s]!.environment?.DATA_DIR).toBeUndefined()
    }
  })
})

describe("the Dockerfile", () => {
  it("is multi-stage, slim, non-root, one entrypoint for every role, stops on SIGTERM, checks health", () => {
    const froms = instruction("FROM")
    expect(froms.length).toBe(2)
    expect(froms.at(-1)).toMatch(/^FROM node:20-\S*slim$/)
    expect(dockerfile).toMatch(/RUN npm ci/)
    expect(instruction("USER")).toEqual(["USER node"])
    expect(instruction("STOPSIGNAL")).toEqual(["STOPSIGNAL SIGTERM"])
    expect(instruction("ENTRYPOINT")).toEqual(['ENTRYPOINT ["node", "bin/bulletin.js"]'])
    expect(instruction("HEALTHCHECK")[0]).toMatch(/bin\/bulletin\.js health/)
  })
})

describe("the containers' commands, run as processes", () => {
  it("bring up the topology: healthchecks pass, servers elect, bots post, the client works", async () => {
    const { services } = config()
    const infra = "127.81.12.1"
    const serverAt = (i: number) => `127.81.12.${10 + i}`
    const data = tempDir("compose")
    const keys = tempDir("compose-keys")
    // What Docker's DNS and volumes would provide.
    const remap = (env: Record<string, string>, extra: Record<string, string>) => {
      const out: Record<string, string> = {}
      for (const [k, v] of Object.entries(env)) out[k] = ["broker", "proxy", "reference"].includes(v) ? infra : v === "0.0.0.0" ? infra : v.startsWith("/data") ? v.replace("/data", data) : v.startsWith("/keys") ? v.replace("/keys", keys) : v
      // What compose's environment does not set, the container does not have: not the test's own key.
      out.BULLETIN_CLUSTER_KEY = ""
      // A container's /tmp is its own: the bots' liveness file, here in this test's folder.
      out.BOT_ALIVE_FILE = join(data, "bot.alive")
      return { ...out, ...extra }
    }
    // ENTRYPOINT is `node bin/bulletin.js`: spawnBulletin runs exactly that.
    const run = (name: string, service: string, extra: Record<string, string> = {}, stdin?: string) =>
      spawnBulletin(name, [...(services[service]!.command ?? [])], { env: remap(services[service]!.environment ?? {}, extra), ...(stdin === undefined ? {} : { stdin }) })
    const healthy = async (service: string, host: string) => {
      const test = services[service]!.healthcheck!.test
      expect(test.slice(0, 3)).toEqual(["CMD", "node", "bin/bulletin.js"])
      for (let attempt = 0; attempt < 40; attempt++) {
        const probe = spawnBulletin(`health-${service}`, test.slice(3), { env: { ...remap(services[service]!.environment ?? {}, {}), HEALTH_HOST: host } })
        if ((await probe.exited) === 0) return
        await new Promise((r) => setTimeout(r, 250))
      }
      throw new Error(`${service} never became healthy`)
    }

    expect(await run("keys", "keys").exited).toBe(0)
    run("broker", "broker")
    run("proxy", "proxy")
    run("reference", "reference")
    await Promise.all([healthy("broker", infra), healthy("proxy", infra), healthy("reference", infra)])
    const replicas = 3
    const servers: Array<Proc> = []
    for (let i = 1; i <= replicas; i++) {
      // Each server its own host: its own address, and the host name compose gives it.
      servers.push(run(`server-${i}`, `server-${i}`, { HOSTNAME: services[`server-${i}`]!.hostname!, PEER_BIND: `tcp://${serverAt(i)}:5560`, PEER_ADDR: `tcp://${serverAt(i)}:5560`, SERVER_HOST: serverAt(i), BULLETIN_METRICS_HOST: serverAt(i) }))
    }
    await Promise.all(servers.map((_, i) => healthy(`server-${i + 1}`, serverAt(i + 1))))
    await Promise.all(servers.map((s) => s.waitFor(/serving requests/)))
    await Promise.race(servers.map((s) => s.waitFor(/coordinator is server-\d \(this server\)/, 20_000)))
    const bots = Array.from({ length: services.bot!.deploy!.replicas! }, (_, i) => run(`bot-${i + 1}`, "bot", { BOT_RATE: "10" }))
    await Promise.all(bots.map((b) => b.waitFor(/logged in/)))
    // A bot is healthy once a post of its was acknowledged (its liveness file; both bots here share one folder).
    await healthy("bot", infra)
    const client = run("client", "client", {}, ["login compose", "channels", "channel compose", "publish compose hello from the client container", "history compose", ""].join("\n"))
    expect(await client.exited).toBe(0)
    const out = client.lines.join("\n")
    expect(out).toMatch(/channels \(\d+\)/)
    expect(out).toMatch(/hello from the client container/)
    // The dashboard container's command serves the page with every replica's reports.
    const dashboard = run("dashboard", "dashboard")
    const url = /dashboard: (http:\/\/\S+)/.exec(await dashboard.waitFor(/dashboard: http/))![1]!
    expect(((await (await fetch(`${url}api/info`)).json()) as { mode: string }).mode).toBe("live")
    const seen = new Set<string>()
    const res = await fetch(`${url}api/events`)
    const reader = res.body!.getReader()
    const deadline = performance.now() + 10_000
    while (seen.size < replicas && performance.now() < deadline) {
      const { value } = await reader.read()
      for (const m of new TextDecoder().decode(value).matchAll(/"server":"(server-\d)"/g)) seen.add(m[1]!)
    }
    await reader.cancel()
    expect(seen.size).toBe(replicas)
    // Each server claimed its own folder (in its own volume, /data/<name>).
    for (let i = 1; i <= replicas; i++) expect(readFileSync(join(data, `server-${i}`, "OWNER"), "utf8").trim()).toBe(`server-${i}`)
  }, 90_000)
})
