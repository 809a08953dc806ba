/**
 * `npx tsx bench/catchup.ts [--ops N]`: how fast a server that missed N
 * operations catches up from its peers, next to two baselines measured in
 * the same run on the same machine: the rate the cluster accepted those
 * writes from clients, and the raw rate of the Store applying the same ops
 * in batches on this disk (the limit catch-up could reach).
 */
import { spawn } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { Effect } from "effect"
import * as zmq from "zeromq"
import { parse } from "../src/cli/options.ts"
import { encode } from "../src/protocol/codec.ts"
import type { Op } from "../src/protocol/ops.ts"
import { openLmdb } from "../src/store/OrderedKv.ts"
import { makeStore } from "../src/store/Store.ts"

const p = parse(process.argv.slice(2), {
  ops: { default: "5000", help: "operations the stopped server misses" },
  host: { default: "127.84.0.1", help: "loopback address for broker, proxy and reference" },
  clients: { default: "16", help: "concurrent writers" },
})
const n = Number(p.values.ops)
const host = p.values.host!
const clients = Number(p.values.clients)
const root = resolve(import.meta.dirname, "..")
const bin = join(root, "bin/bulletin.js")
const children: Array<ReturnType<typeof spawn>> = []
const start = (args: Array<string>, ready: RegExp) =>
  new Promise<{ child: ReturnType<typeof spawn>; lines: Array<string>; waitFor: (r: RegExp) => Promise<string> }>((done, fail) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    children.push(child)
    const lines: Array<string> = []
    const waiters: Array<() => void> = []
    const waitFor = (r: RegExp) =>
      new Promise<string>((ok) => {
        const check = () => {
          const hit = lines.find((l) => r.test(l))
          if (hit !== undefined) ok(hit)
          return hit !== undefined
        }
        if (!check()) waiters.push(() => void check())
      })
    let buffer = ""
    const on = (b: Buffer) => {
      buffer += b.toString()
      const parts = buffer.split("\n")
      buffer = parts.pop()!
      lines.push(...parts)
      for (const w of waiters) w()
    }
    child.stdout!.on("data", on)
    child.stderr!.on("data", on)
    const t = setTimeout(() => fail(new Error(`${args.join(" ")} not ready:\n${lines.join("\n")}`)), 30_000)
    void waitFor(ready).then(() => {
      clearTimeout(t)
      done({ child, lines, waitFor })
    })
  })
const stop = (c: ReturnType<typeof spawn>) => new Promise<void>((done) => (c.exitCode !== null ? done() : (c.on("exit", () => done()), c.kill("SIGTERM"))))

const main = async () => {
  const data = mkdtempSync(join(tmpdir(), "bulletin-catchup-"))
  try {
    await start(["broker", "--host", host], /broker: tcp/)
    await start(["proxy", "--host", host], /proxy: tcp/)
    await start(["reference", "--host", host], /reference: serving/)
    const own = (i: number) => host.replace(/\.\d+$/, `.${10 + i}`)
    const server = (i: number) => start(["server", "--name", `s${i}`, "--data", join(data, `s${i}`), "--broker", host, "--proxy", host, "--reference", host, "--host", own(i)], /serving requests/)
    const servers = await Promise.all([1, 2, 3].map(server))
    const req = new zmq.Request({ linger: 0, receiveTimeout: 5_000 })
    req.connect(`tcp://${host}:5555`)
    await req.send(encode({ service: "channel", data: { channel: "catchup", timestamp: Date.now(), clock: 1 } }))
    await req.receive()
    req.close()
    await new Promise((r) => setTimeout(r, 500))
    await stop(servers[2]!.child)

    // Baseline 1: the cluster (two servers) accepting the writes from clients.
    const t0 = performance.now()
    await Promise.all(
      Array.from({ length: clients }, async (_, c) => {
        const sock = new zmq.Request({ linger: 0, receiveTimeout: 10_000 })
        sock.connect(`tcp://${host}:5555`)
        for (let i = c; i < n; i += clients) {
          await sock.send(encode({ service: "publish", data: { user: `w${c}`, channel: "catchup", message: `m${i}`, id: `c${i}`, timestamp: Date.now(), clock: 1 } }))
          await sock.receive()
        }
        sock.close()
      }),
    )
    const writeSeconds = (performance.now() - t0) / 1000

    // The measurement: s3 restarts and pulls what it missed.
    await new Promise((r) => setTimeout(r, 1_000))
    const back = await server(3)
    const line = await back.waitFor(/caught up: \d+ ops/)
    const [, ops, ms] = /caught up: (\d+) ops pulled from \d+ peers in (\d+) ms/.exec(line)!.map(Number) as [number, number, number]

    // Baseline 2: this disk applying the same number of ops through the Store, in catch-up-sized batches.
    const store = makeStore(openLmdb(mkdtempSync(join(tmpdir(), "bulletin-catchup-raw-"))))
    const opsRaw: Array<Op> = Array.from({ length: n }, (_, i) => ({ kind: "publish", user: "w", channel: "catchup", message: `m${i}`, origin: "s1", seq: i + 1, clock: i + 1, timestamp: 1_790_000_000_000, id: `c${i}` }))
    const t1 = performance.now()
    for (let i = 0; i < n; i += 256) await Effect.runPromise(Effect.all(opsRaw.slice(i, i + 256).map(store.apply), { concurrency: "unbounded", discard: true }))
    const rawSeconds = (performance.now() - t1) / 1000

    console.log(`catch-up of a server that missed ${n} client posts (plus the channel and logins), 2 peers, this machine:`)
    console.log(`  cluster accepting the writes (16 clients, durable)   ${(n / writeSeconds).toFixed(0).padStart(8)} ops/s`)
    console.log(`  Store applying them in 256-op batches (raw disk)       ${(n / rawSeconds).toFixed(0).padStart(8)} ops/s`)
    console.log(`  catch-up: ${ops} ops in ${ms} ms                      ${(ops / (ms / 1000)).toFixed(0).padStart(8)} ops/s   (${((ops / (ms / 1000)) / (n / rawSeconds)).toFixed(2)} of the raw disk rate)`)
  } finally {
    await Promise.all(children.map(stop))
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e)
    process.exit(1)
  },
)
