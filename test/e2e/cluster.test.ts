import { Duration, Effect, Queue } from "effect"
import * as zmq from "zeromq"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type BulletinClient, defaultClientConfig, makeClient } from "../../src/actors/client.ts"
import { decode, encode } from "../../src/protocol/codec.ts"
import type { Publication } from "../../src/protocol/messages.ts"
import { layerZmq } from "../../src/transport/zmq.ts"
import { type Cluster, startCluster, stopAll } from "../support/procs.ts"

const host = "127.81.1.1"
let cluster: Cluster

beforeAll(async () => {
  cluster = await startCluster(host, 3)
})
afterAll(stopAll)

const run = <A>(program: Effect.Effect<A, unknown, import("effect").Scope.Scope | import("../../src/transport/Transport.ts").Transport>) =>
  Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(layerZmq())))

const client = () => makeClient({ ...defaultClientConfig, broker: cluster.brokerFrontend, proxy: cluster.proxyBackend })

/** Takes publications until `n` arrived or `ms` passed. */
const collect = (c: BulletinClient, n: number, ms: number) =>
  Effect.gen(function* () {
    const got: Array<Publication> = []
    yield* Effect.gen(function* () {
      while (got.length < n) got.push(yield* Queue.take(c.publications))
    }).pipe(Effect.timeoutOption(Duration.millis(ms)))
    return got
  })

/** Subscriptions reach the proxy asynchronously: publish probes until one arrives. */
const settle = Effect.sleep(Duration.millis(300))

describe("a cluster of 3 servers behind the broker", () => {
  it("lets a client read its own posts at once, whichever server answers (read-your-writes)", async () => {
    await run(
      Effect.gen(function* () {
        const c = yield* client()
        yield* c.login("reader")
        yield* c.channel("ryw")
        for (let i = 0; i < 15; i++) {
          expect((yield* c.publish("ryw", `mine ${i}`)).ok).toBe(true)
          // The next request goes to another server (round robin): it must already show the post.
          const h = yield* c.history({ channel: "ryw", limit: 500 })
          expect((h.data.messages as Array<{ message: string }>).map((m) => m.message)).toContain(`mine ${i}`)
        }
      }),
    )
  })

  it("serves several clients at once, and every subscriber gets every simultaneous post exactly once", async () => {
    const clientsN = 5
    const postsEach = 20
    await run(
      Effect.gen(function* () {
        const clients = yield* Effect.all(Array.from({ length: clientsN }, client))
        yield* Effect.all(clients.map((c, i) => c.login(`user${i}`)), { concurrency: "unbounded" })
        const created = yield* clients[0]!.channel("load")
        expect(created.ok).toBe(true)
        expect(created.data.created).toBe(true)
        yield* Effect.all(clients.map((c) => c.subscribe("load")))
        yield* settle
        // once replicated, creating it again (on any server) is a no-op success
        for (const c of clients.slice(0, 3)) expect((yield* c.channel("load")).data).toMatchObject({ status: "sucesso", created: false })
        const replies = yield* Effect.all(
          clients.flatMap((c, i) => Array.from({ length: postsEach }, (_, k) => c.publish("load", `post ${k} of user${i}`))),
          { concurrency: "unbounded" },
        )
        expect(replies.filter((r) => !r.ok).map((r) => r.error)).toEqual([])
        const received = yield* Effect.all(clients.map((c) => collect(c, clientsN * postsEach, 10_000)), { concurrency: "unbounded" })
        for (const got of received) {
          const texts = got.map((p) => (p.service === "publish" ? p.message : ""))
          expect(new Set(texts).size).toBe(clientsN * postsEach)
          expect(texts.length).toBe(clientsN * postsEach)
        }
        const users = yield* clients[1]!.users()
        expect(users.data.users).toEqual(expect.arrayContaining(["user0", "user1", "user2", "user3", "user4"]))
        // Every server converges to every post (round-robin spreads the
        // history requests over all three; replication is asynchronous, so
        // each gets a few seconds).
        const counts: Array<number> = []
        for (let attempt = 0; attempt < 60 && !(counts.length >= 3 && counts.slice(-3).every((n) => n === clientsN * postsEach)); attempt++) {
          const h = yield* clients[0]!.history({ channel: "load", limit: 500 })
          expect(h.ok).toBe(true)
          counts.push((h.data.messages as Array<unknown>).length)
          if (counts[counts.length - 1] !== clientsN * postsEach) yield* Effect.sleep(Duration.millis(50))
        }
        expect(counts.slice(-3)).toEqual([clientsN * postsEach, clientsN * postsEach, clientsN * postsEach])
      }),
    )
  })

  it("delivers a private message to its recipient only, even to a user whose name extends it", async () => {
    await run(
      Effect.gen(function* () {
        const [ana, anabela, bob] = yield* Effect.all([client(), client(), client()])
        for (const [c, n] of [[ana, "ana"], [anabela, "anabela"], [bob, "bob"]] as const) expect((yield* c.login(n)).ok).toBe(true)
        yield* settle
        expect((yield* bob.message("ana", "for ana only")).ok).toBe(true)
        expect((yield* bob.message("anabela", "for anabela")).ok).toBe(true)
        const toAna = yield* collect(ana, 2, 1500)
        const toAnabela = yield* collect(anabela, 2, 1500)
        expect(toAna.map((p) => p.message)).toEqual(["for ana only"])
        expect(toAnabela.map((p) => p.message)).toEqual(["for anabela"])
        const unknown = yield* bob.message("nobody-here", "hello?")
        expect(unknown.ok).toBe(false)
        expect(unknown.error).toContain("does not exist")
        const conv = yield* ana.history({ user: "ana", peer: "bob" })
        expect((conv.data.messages as Array<{ message: string }>).map((m) => m.message)).toEqual(["for ana only"])
      }),
    )
  })

  it("answers malformed, oversized and unknown requests with an error, and keeps serving", async () => {
    const sock = new zmq.Request({ linger: 0, receiveTimeout: 5_000 })
    sock.connect(cluster.brokerFrontend)
    const ask = async (frame: Uint8Array) => {
      await sock.send(frame)
      const [reply] = await sock.receive()
      const d = decode(reply!)
      if (!d.ok) throw new Error(d.error)
      return d.value as { service: string; data: { status: string; description: string; clock: number } }
    }
    try {
      for (let round = 0; round < 3; round++) {
        // three rounds: the broker sends each to a different server
        const garbage = await ask(new Uint8Array([0xc1, 0xff, 0x00, 0x13]))
        expect(garbage.data.status).toBe("erro")
        expect(garbage.data.description).toContain("malformed MessagePack")
        const huge = await ask(encode({ service: "publish", data: { user: "x", channel: "load", message: "y".repeat(1_000_000) } }))
        expect(huge.data.description).toContain("frame too large")
        const unknown = await ask(encode({ service: "teleport", data: {} }))
        expect(unknown).toMatchObject({ service: "teleport", data: { status: "erro" } })
        const wrong = await ask(encode({ opcao: "channel", data: { channel: ["not", "a", "name"] } }))
        expect(wrong).toMatchObject({ service: "channel", data: { status: "erro" } })
        const ok = await ask(encode({ service: "channels", data: { timestamp: 1.7e9, clock: 1 } }))
        expect(ok.service).toBe("channels")
        expect(ok.data.clock).toBeGreaterThan(1)
      }
    } finally {
      sock.close()
    }
  })

  it("applies a retried request once (same request id)", async () => {
    const sock = new zmq.Request({ linger: 0, receiveTimeout: 5_000 })
    sock.connect(cluster.brokerFrontend)
    try {
      const ask = async (v: unknown) => {
        await sock.send(encode(v))
        const [reply] = await sock.receive()
        return (decode(reply!) as { value: { data: Record<string, unknown> } }).value.data
      }
      await ask({ service: "login", data: { user: "retrier" } })
      await ask({ service: "channel", data: { channel: "retries" } })
      await new Promise((r) => setTimeout(r, 200))
      // A Lazy Pirate retry comes after a timeout, by which time the first
      // server's op has reached the others; each retry lands on another server.
      for (let i = 0; i < 4; i++) {
        const r = await ask({ service: "publish", data: { user: "retrier", channel: "retries", message: "once", id: "fixed-request-id-1" } })
        expect(r.status).toBe("OK")
        await new Promise((r) => setTimeout(r, 250))
      }
      await new Promise((r) => setTimeout(r, 300))
      for (let i = 0; i < 3; i++) {
        const h = await ask({ service: "history", data: { channel: "retries" } })
        expect((h.messages as Array<unknown>).length).toBe(1)
      }
    } finally {
      sock.close()
    }
  })

  it("keeps the history through a restart of every server (SIGKILL)", async () => {
    await run(
      Effect.gen(function* () {
        const c = yield* client()
        yield* c.login("survivor")
        yield* c.channel("durable")
        for (let i = 0; i < 30; i++) expect((yield* c.publish("durable", `kept ${i}`)).ok).toBe(true)
      }),
    )
    await new Promise((r) => setTimeout(r, 300))
    await Promise.all(cluster.servers.map((s) => s.stop("SIGKILL")))
    await Promise.all([1, 2, 3].map((i) => cluster.startServer(i)))
    await run(
      Effect.gen(function* () {
        const c = yield* client()
        yield* c.login("survivor")
        for (let i = 0; i < 3; i++) {
          const h = yield* c.history({ channel: "durable", limit: 100 })
          expect((h.data.messages as Array<{ message: string }>).map((m) => m.message)).toEqual(Array.from({ length: 30 }, (_, i) => `kept ${i}`))
        }
        expect((yield* c.users()).data.users).toContain("survivor")
        // and the restarted servers keep serving writes
        expect((yield* c.publish("durable", "after restart")).ok).toBe(true)
      }),
    )
  })
})
