/**
 * `npx tsx bench/history.ts [--ops 10000,100000,1000000]`: what a server's
 * store costs as its history grows (issue 14, item 4): for each size, the
 * time to open it (today the indexes are rebuilt by scanning every op), the
 * process's RSS after opening, a `history` page, and `users` / `channels`.
 * Each size is opened in a fresh process, so RSS is that store's alone; the
 * baseline is an empty store opened the same way in the same run. Then a
 * real server is started on that store (open mode, no reference: the
 * store's share of a restart) and timed to "serving requests".
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { parse } from "../src/cli/options.ts"
import { packageRoot } from "../src/cli/root.ts"
import type { Op } from "../src/protocol/ops.ts"
import { openLmdb } from "../src/store/OrderedKv.ts"
import { makeStore } from "../src/store/Store.ts"

const p = parse(process.argv.slice(2), {
  ops: { default: "10000,100000", help: "store sizes, in ops (comma-separated)" },
  measure: { help: "internal: open this store and print its figures as JSON" },
  host: { default: "127.91.0.1", help: "loopback address for the broker and proxy the restarted server joins" },
})

const bin = join(packageRoot(import.meta.url), "bin", "bulletin.js")
/** Spawns `bulletin ARGS` and resolves once a line matches `ready`, with the ms it took. */
const started = (args: ReadonlyArray<string>, ready: RegExp) =>
  new Promise<{ child: ChildProcess; ms: number }>((done, fail) => {
    const t0 = performance.now()
    const child = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, BULLETIN_OPEN: "1" } })
    let out = ""
    const timer = setTimeout(() => fail(new Error(`${args.join(" ")}: not ready in 60 s:\n${out}`)), 60_000)
    const on = (b: Buffer) => {
      out += b.toString()
      if (ready.test(out)) {
        clearTimeout(timer)
        done({ child, ms: performance.now() - t0 })
      }
    }
    child.stdout!.on("data", on)
    child.stderr!.on("data", on)
  })
const stopped = (c: ChildProcess) => new Promise<void>((done) => (c.exitCode !== null ? done() : (c.on("exit", () => done()), c.kill("SIGTERM"))))

const channels = 50
const users = 200

const measure = (dir: string) => {
  const t0 = performance.now()
  const store = makeStore(openLmdb(dir))
  const openMs = performance.now() - t0
  const t1 = performance.now()
  const page = Effect.runSync(Effect.orDie(store.history({ channel: "c0", limit: 50 })))
  const historyMs = performance.now() - t1
  const t2 = performance.now()
  const lists = store.users().length + store.channels().length
  const listsMs = performance.now() - t2
  global.gc?.()
  console.log(JSON.stringify({ ops: store.opCount(), openMs, historyMs, listsMs, lists, page: page.posts.length, rssMb: process.memoryUsage().rss / 2 ** 20 }))
  process.exit(0)
}

const fill = async (dir: string, n: number) => {
  const store = makeStore(openLmdb(dir))
  const batch = 5_000
  for (let done = 0; done < n; done += batch) {
    const ops: Array<Op> = []
    for (let i = done; i < Math.min(n, done + batch); i++) {
      const seq = i + 1
      const base = { origin: "server-1", seq, clock: seq, timestamp: 1_700_000_000_000 + seq }
      if (i < users) ops.push({ kind: "user", user: `u${i}`, ...base })
      else if (i < users + channels) ops.push({ kind: "channel", channel: `c${i - users}`, ...base })
      else ops.push({ kind: "publish", user: `u${i % users}`, channel: `c${i % channels}`, message: `post ${i} ${"x".repeat(100)}`, ...base })
    }
    await Effect.runPromise(Effect.orDie(store.applyAll(ops)))
  }
}

if (p.values.measure !== undefined) measure(p.values.measure)
else {
  const sizes = [0, ...p.values.ops!.split(",").map(Number)]
  // A server restarted on each store: from its start to "serving requests" (open mode, no reference: the store's part alone).
  const host = p.values.host!
  const broker = await started(["broker", "--host", host], /broker: tcp/)
  const proxy = await started(["proxy", "--host", host], /proxy: tcp/)
  console.log("history size   fill s   open ms   RSS MB   history page ms   users+channels ms   server start to serving ms")
  for (const n of sizes) {
    const dir = mkdtempSync(join(tmpdir(), "bulletin-history-"))
    const f0 = performance.now()
    if (n > 0) await fill(dir, n)
    const fillS = (performance.now() - f0) / 1000
    const out = execFileSync(process.execPath, [...process.execArgv, import.meta.filename, "--measure", dir], { encoding: "utf8" })
    const r = JSON.parse(out.trim().split("\n").pop()!) as { ops: number; openMs: number; historyMs: number; listsMs: number; rssMb: number }
    const server = await started(["server", "--name", "server-1", "--data", dir, "--broker", host, "--proxy", host, "--reference", "none", "--host", host.replace(/\.\d+$/, ".11")], /serving requests/)
    await stopped(server.child)
    console.log(`${String(r.ops).padStart(12)}${fillS.toFixed(1).padStart(9)}${r.openMs.toFixed(0).padStart(10)}${r.rssMb.toFixed(0).padStart(9)}${r.historyMs.toFixed(2).padStart(18)}${r.listsMs.toFixed(2).padStart(20)}${server.ms.toFixed(0).padStart(29)}`)
  }
  await Promise.all([stopped(broker.child), stopped(proxy.child)])
}
