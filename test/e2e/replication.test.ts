import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { defaultClientConfig, makeClient } from "../../src/actors/client.ts"
import { layerZmq } from "../../src/transport/zmq.ts"
import { type Cluster, spawnBulletin, startCluster, stopAll } from "../support/procs.ts"

/**
 * Real processes under load: bots and scripted clients post while one server
 * is SIGKILLed mid-stream and restarted; afterwards every server must return
 * the same complete history (the broker's round robin sends consecutive
 * requests to each server in turn).
 */
const host = "127.81.35.1"
let cluster: Cluster

beforeAll(async () => {
  cluster = await startCluster(host, 3)
}, 60_000)
afterAll(stopAll)

const jsonLines = (lines: ReadonlyArray<string>) => lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>)

const clientsCount = 4
const postsPerClient = 100 // with the bots' posts, below one history page (500)

describe("replication over real processes", () => {
  it("loses no acknowledged post when a server is SIGKILLed mid-stream and restarted", async () => {
    const bots = [1, 2].map((i) => spawnBulletin(`bot-${i}`, ["bot", "--broker", host, "--proxy", host, "--rate", "15", "--name", `loadbot${i}`]))
    await Promise.all(bots.map((b) => b.waitFor(/logged in/)))
    const script = (c: number) => ["channel load", ...Array.from({ length: postsPerClient }, (_, i) => `publish load c${c}-${i}`), ""].join("\n")
    const clients = Array.from({ length: clientsCount }, (_, c) =>
      spawnBulletin(`client-${c}`, ["client", "--json", "--broker", host, "--proxy", host, "--user", `writer${c}`, "--timeout", "1500"], { stdin: script(c) }),
    )
    // Mid-stream: kill server-2 outright, bring it back a few seconds later.
    await new Promise((r) => setTimeout(r, 700))
    await cluster.servers[1]!.stop("SIGKILL")
    await new Promise((r) => setTimeout(r, 2_500))
    const restarted = await cluster.startServer(2)
    const codes = await Promise.all(clients.map((c) => c.exited))
    // No client crashed: 0, or 1 where a write failed under the faults (what was acknowledged is checked below).
    for (const code of codes) expect([0, 1]).toContain(code)
    const acked = clients.flatMap((c) =>
      jsonLines(c.lines)
        .filter((o) => o.type === "reply" && o.command === "publish" && o.ok === true)
        .map((o) => o.text as string),
    )
    for (const b of bots) await b.stop()
    const caughtUp = await restarted.waitFor(/caught up: \d+ ops/)
    console.log(`real: ${caughtUp.replace(/^.*server /, "server ")}`)

    // Quiescence: live pushes done, one anti-entropy round for good measure.
    await new Promise((r) => setTimeout(r, 2_500))
    const reader = spawnBulletin("reader", ["client", "--json", "--broker", host, "--proxy", host, "--user", "reader"], { stdin: Array.from({ length: 9 }, () => "history load 500").join("\n") + "\n" })
    expect(await reader.exited).toBe(0)
    const pages = jsonLines(reader.lines).filter((o) => o.type === "reply" && o.command === "history")
    expect(pages.length).toBe(9)
    const views = pages.map((p) => (p.data as { messages: Array<{ message: string; origin: string; seq: number; clock: number }> }).messages)
    const digest = (v: (typeof views)[0]) => v.map((m) => `${m.clock}/${m.origin}/${m.seq}/${m.message}`).join("|")
    // Every server answered (round robin over 3 servers, 9 requests), and all answers are identical.
    expect(new Set(views.map(digest)).size).toBe(1)
    expect(views[0]!.length).toBeLessThan(500) // one page holds it all
    const messages = views[0]!.map((m) => m.message)
    const ours = messages.filter((m) => /^c\d+-\d+$/.test(m))
    const counts = new Map<string, number>()
    for (const m of ours) counts.set(m, (counts.get(m) ?? 0) + 1)
    const lost = acked.filter((m) => !counts.has(m as string))
    const duplicated = [...counts.values()].filter((n) => n > 1).length
    console.log(`real: ${acked.length} of ${clientsCount * postsPerClient} client posts acknowledged; ${ours.length} present once each on all 3 servers; lost ${lost.length}, duplicated ${duplicated}; ${messages.length - ours.length} bot posts in the channel`)
    for (const s of cluster.servers) for (const l of s.lines.filter((x) => /replication lag/.test(x))) console.log(`real: ${l.replace(/^.*server /, "server ")}`)
    expect(acked.length).toBeGreaterThan(clientsCount * postsPerClient * 0.9)
    expect(lost).toEqual([])
    expect(duplicated).toBe(0)
  }, 120_000)

  it("catches up on thousands of long posts missed while down, to the end, before it serves", async () => {
    const writers = 8
    const perWriter = 250
    const text = (w: number, i: number) => `w${w}-${i} ${"x".repeat(3_900)}`
    await cluster.servers[2]!.stop("SIGKILL")
    const t0 = performance.now()
    const acked = await Effect.runPromise(
      Effect.all(
        Array.from({ length: writers }, (_, w) =>
          Effect.scoped(
            Effect.gen(function* () {
              const c = yield* makeClient({ ...defaultClientConfig, broker: cluster.brokerFrontend, proxy: cluster.proxyBackend })
              yield* c.login(`long${w}`)
              yield* c.channel("long")
              let ok = 0
              for (let i = 0; i < perWriter; i++) if ((yield* c.publish("long", text(w, i))).ok) ok += 1
              return ok
            }),
          ),
        ),
        { concurrency: "unbounded" },
      ).pipe(Effect.provide(layerZmq())),
    )
    const total = acked.reduce((a, b) => a + b, 0)
    console.log(`real: ${total} posts of 3.9 KB written in ${((performance.now() - t0) / 1000).toFixed(1)} s while server-3 was down`)
    expect(total).toBe(writers * perWriter)
    const restarted = await cluster.startServer(3)
    const line = restarted.lines.find((l) => /caught up|gave up waiting/.test(l)) ?? ""
    console.log(`real: ${line.replace(/^.*server /, "server ")}`)
    const m = /caught up: (\d+) ops pulled from \d+ peers in (\d+) ms/.exec(line)
    expect(m).not.toBeNull()
    expect(Number(m![1])).toBeGreaterThanOrEqual(total)
    console.log(`real: catch-up at ${((Number(m![1]) * 4_000) / 1e6 / (Math.max(1, Number(m![2])) / 1000)).toFixed(1)} MB/s`)
    // Served from the restarted server too (round robin): every page of every server the same.
    const views = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const c = yield* makeClient({ ...defaultClientConfig, broker: cluster.brokerFrontend, proxy: cluster.proxyBackend })
          const out: Array<number> = []
          for (let i = 0; i < 3; i++) {
            let count = 0
            let after: unknown = 0
            for (;;) {
              const r = yield* c.history({ channel: "long", after, limit: 500 })
              const got = r.data.messages as Array<{ clock: number; origin: string; seq: number }>
              count += got.length
              if (r.data.more !== true || got.length === 0) break
              const last = got[got.length - 1]!
              after = [last.clock, last.origin, last.seq]
              // Stay on one server for the whole read: each page, two fillers to rotate back.
              yield* c.channels()
              yield* c.channels()
            }
            out.push(count)
            yield* c.channels()
          }
          return out
        }),
      ).pipe(Effect.provide(layerZmq())),
    )
    expect(views).toEqual([total, total, total])
  }, 180_000)
})
