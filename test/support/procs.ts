import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { createInterface } from "node:readline"
import { type ClusterKey, generateKey } from "../../src/transport/keys.ts"

export const bin = resolve(import.meta.dirname, "../../bin/bulletin.js")

/**
 * The cluster key of this test file's processes: every role spawned here
 * gets it (BULLETIN_CLUSTER_KEY), so cluster links are authenticated as they
 * are by default; a test that wants open mode passes --open.
 */
export const testKey: ClusterKey = generateKey()
const keyEnv = { BULLETIN_CLUSTER_KEY: `${testKey.publicKey} ${testKey.secretKey}` }
// Inherited by every child this test file starts, however it starts it (ip netns exec, probes).
process.env.BULLETIN_CLUSTER_KEY = keyEnv.BULLETIN_CLUSTER_KEY

/** Socket options of a test's own socket on a cluster port (reference, peer port): it presents the cluster's key. */
export const curveClient = () => ({ curveServerKey: testKey.publicKey, curvePublicKey: testKey.publicKey, curveSecretKey: testKey.secretKey })

export interface Proc {
  readonly name: string
  readonly child: ChildProcess
  readonly lines: Array<string>
  /** performance.now() at which each line arrived. */
  readonly at: Array<number>
  readonly waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<string>
  readonly exited: Promise<number | null>
  readonly stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

const live = new Set<Proc>()

/** Runs `bulletin ARGS` as a child process, collecting its output lines. */
export const spawnBulletin = (
  name: string,
  args: ReadonlyArray<string>,
  options: { stdin?: string; env?: Record<string, string>; wrap?: (argv: ReadonlyArray<string>) => Array<string> } = {},
): Proc => {
  // `wrap` runs it elsewhere, e.g. `ip netns exec NS ...`, which execs in place (signals reach node itself).
  const [command, ...rest] = (options.wrap ?? ((a) => [...a]))([process.execPath, bin, ...args])
  const child = spawn(command!, rest, { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, BULLETIN_CONFIG: "", ...keyEnv, ...options.env } })
  const lines: Array<string> = []
  const at: Array<number> = []
  const waiters = new Set<() => void>()
  for (const s of [child.stdout!, child.stderr!]) {
    createInterface({ input: s }).on("line", (l) => {
      lines.push(l)
      at.push(performance.now())
      if (process.env.BULLETIN_TEST_VERBOSE) console.log(`${name} | ${l}`)
      for (const w of waiters) w()
    })
  }
  // Given stdin is written and closed; otherwise it stays open for the test to write to.
  if (options.stdin !== undefined) child.stdin!.end(options.stdin)
  const exited = new Promise<number | null>((done) => child.on("exit", (code, signal) => done(code ?? (signal === null ? null : 128))))
  const waitFor = (pattern: RegExp, timeoutMs = 20_000) =>
    new Promise<string>((done, fail) => {
      const check = () => {
        const hit = lines.find((l) => pattern.test(l))
        if (hit === undefined) return false
        waiters.delete(check)
        clearTimeout(timer)
        done(hit)
        return true
      }
      const timer = setTimeout(() => {
        waiters.delete(check)
        fail(new Error(`${name}: no line matching ${pattern} within ${timeoutMs} ms; output:\n${lines.slice(-30).join("\n")}`))
      }, timeoutMs)
      if (!check()) waiters.add(check)
    })
  const proc: Proc = {
    name,
    child,
    lines,
    at,
    waitFor,
    exited,
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      const t = setTimeout(() => child.kill("SIGKILL"), 10_000)
      const code = await exited
      clearTimeout(t)
      live.delete(proc)
      return code
    },
  }
  live.add(proc)
  void exited.then(() => live.delete(proc))
  return proc
}

/** Stops every process started here, then removes every folder `tempDir` made (KEEP_TEMP=1 keeps them). */
export const stopAll = async () => {
  await Promise.all([...live].map((p) => p.stop()))
  if (process.env.KEEP_TEMP !== "1") for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true })
}

const temps: Array<string> = []
export const tempDir = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), `bulletin-${prefix}-`))
  temps.push(dir)
  return dir
}

export interface Cluster {
  readonly host: string
  readonly broker: Proc
  readonly proxy: Proc
  readonly reference: Proc
  readonly servers: Array<Proc>
  readonly dataRoot: string
  readonly brokerFrontend: string
  readonly proxyBackend: string
  readonly startServer: (i: number) => Promise<Proc>
}

/** Server i's own loopback address next to the cluster's: 127.81.1.1 -> 127.81.1.11, .12, ... */
export const serverHost = (host: string, i: number) => host.replace(/\.\d+$/, (last) => `.${Number(last.slice(1)) + 10 + i}`)

/**
 * Broker, proxy, reference and N servers on `host` (each test file its own loopback
 * address, so the standard ports never collide), each server ready to serve.
 */
export const startCluster = async (host: string, serverCount = 3, options: { readonly open?: boolean; readonly serverArgs?: ReadonlyArray<string> } = {}): Promise<Cluster> => {
  const dataRoot = tempDir("cluster")
  const open = options.open === true ? ["--open"] : []
  const broker = spawnBulletin("broker", ["broker", "--host", host, ...open])
  const proxy = spawnBulletin("proxy", ["proxy", "--host", host, ...open])
  const reference = spawnBulletin("reference", ["reference", "--host", host, ...open])
  await Promise.all([broker.waitFor(/broker: tcp/), proxy.waitFor(/proxy: tcp/), reference.waitFor(/reference: serving/)])
  const servers: Array<Proc> = []
  const startServer = async (i: number) => {
    const name = `server-${i}`
    // Each server on its own address, so each keeps the peer port 5560.
    const p = spawnBulletin(name, ["server", "--name", name, "--data", join(dataRoot, name), "--broker", host, "--proxy", host, "--reference", host, "--host", serverHost(host, i), ...open, ...(options.serverArgs ?? [])])
    servers[i - 1] = p
    await p.waitFor(/serving requests/)
    return p
  }
  await Promise.all(Array.from({ length: serverCount }, (_, i) => startServer(i + 1)))
  return { host, broker, proxy, reference, servers, dataRoot, brokerFrontend: `tcp://${host}:5555`, proxyBackend: `tcp://${host}:5558`, startServer }
}
