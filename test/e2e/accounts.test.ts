import { Duration, Effect, Queue } from "effect"
import * as zmq from "zeromq"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type BulletinClient, defaultClientConfig, makeClient } from "../../src/actors/client.ts"
import { decode } from "../../src/protocol/codec.ts"
import { layerZmq } from "../../src/transport/zmq.ts"
import { type Cluster, startCluster, stopAll } from "../support/procs.ts"

/**
 * Accounts (issue 13): a name claimed with a password cannot be used, read or
 * spied on without it; a name without one behaves as the standard says.
 * Two servers, so requests alternate between them (the broker round-robins):
 * a token issued by one is honoured by the other.
 */
const host = "127.81.15.1"
let cluster: Cluster
beforeAll(async () => {
  cluster = await startCluster(host, 2)
}, 60_000)
afterAll(stopAll)

const session = <A>(body: (c: BulletinClient) => Effect.Effect<A, unknown>) =>
  Effect.runPromise(
    Effect.scoped(Effect.flatMap(makeClient({ ...defaultClientConfig, broker: cluster.brokerFrontend, proxy: cluster.proxyBackend }), body)).pipe(Effect.provide(layerZmq())),
  )

/** Everything published on the proxy's open port during `during`, whatever the topic (a subscriber to ""). */
const eavesdrop = async (during: () => Promise<unknown>) => {
  const sub = new zmq.Subscriber({ linger: 0, receiveTimeout: 200 })
  sub.connect(cluster.proxyBackend)
  sub.subscribe("")
  await new Promise((r) => setTimeout(r, 300))
  const frames: Array<{ topic: string; payload: Buffer }> = []
  let done = false
  const reading = (async () => {
    while (!done) {
      try {
        const [topic, payload] = await sub.receive()
        frames.push({ topic: topic!.toString(), payload: payload! })
      } catch {
        /* timeout: look at `done` again */
      }
    }
  })()
  await during()
  await new Promise((r) => setTimeout(r, 500))
  done = true
  await reading
  sub.close()
  return frames
}

describe("accounts", () => {
  it("leave an unclaimed name as the standard has it: login, post, send and read without a password", async () => {
    const r = await session((c) =>
      Effect.gen(function* () {
        const login = yield* c.login("plain")
        yield* c.channel("open-room")
        const post = yield* c.publish("open-room", "hello")
        const dm = yield* c.message("plain", "note to self")
        const history = yield* c.history({ user: "plain", peer: "plain" })
        return { login, post, dm, history }
      }),
    )
    expect(r.login.ok && r.post.ok && r.dm.ok && r.history.ok).toBe(true)
    expect(r.login.data.token).toBeUndefined()
    expect((r.history.data.messages as Array<{ message: string }>).map((m) => m.message)).toContain("note to self")
  })

  it("claim a name on the first login with a password; later logins need it, on every server", async () => {
    const first = await session((c) => c.login("alice", "correct horse"))
    expect(first.ok).toBe(true)
    expect(first.data.token).toMatch(/^\d+\.[0-9a-f]{32}\.[0-9a-f]{64}$/)
    expect(first.data.topic).toMatch(/^~[0-9a-f]{32}$/)
    // Let the claim replicate, then try both servers (consecutive requests alternate).
    await new Promise((r) => setTimeout(r, 500))
    const tries = await session((c) =>
      Effect.gen(function* () {
        const out: Array<{ ok: boolean; error?: string }> = []
        for (let i = 0; i < 4; i++) out.push(yield* c.login("alice", "wrong"))
        for (let i = 0; i < 4; i++) out.push(yield* c.login("alice"))
        for (let i = 0; i < 4; i++) out.push(yield* c.login("alice", "correct horse"))
        return out
      }),
    )
    expect(tries.slice(0, 4).map((t) => t.ok)).toEqual([false, false, false, false])
    expect(tries[0]!.error).toMatch(/wrong password/)
    expect(tries.slice(4, 8).map((t) => t.ok)).toEqual([false, false, false, false])
    expect(tries[4]!.error).toMatch(/claimed name/)
    expect(tries.slice(8).map((t) => t.ok)).toEqual([true, true, true, true])
  })

  it("refuse posting, sending and reading as a claimed name without its token; honour the token on every server", async () => {
    await session((c) => c.login("bob", "bob's secret"))
    await new Promise((r) => setTimeout(r, 500))
    const r = await session((c) =>
      Effect.gen(function* () {
        yield* c.login("mallory")
        yield* c.channel("lobby")
        const out: Record<string, Array<{ ok: boolean; error?: string }>> = { forged: [], fakeToken: [], owner: [] }
        for (let i = 0; i < 2; i++) {
          out.forged!.push(yield* c.call("publish", { user: "bob", channel: "lobby", message: "I am bob" }))
          out.forged!.push(yield* c.call("message", { src: "bob", dst: "mallory", message: "from bob, honest" }))
          out.forged!.push(yield* c.call("history", { user: "bob", peer: "alice" }))
          const fake = `${Math.floor(Date.now() / 1000)}.${"0".repeat(32)}.${"f".repeat(64)}`
          out.fakeToken!.push(yield* c.call("publish", { user: "bob", channel: "lobby", message: "I am bob", token: fake }))
        }
        // A token of mallory's own does not make it bob.
        const own = yield* c.login("mallory2", "m")
        out.fakeToken!.push(yield* c.call("publish", { user: "bob", channel: "lobby", message: "I am bob", token: own.data.token }))
        // bob himself, with his token, through both servers.
        yield* c.login("bob", "bob's secret")
        for (let i = 0; i < 2; i++) {
          out.owner!.push(yield* c.publish("lobby", `bob ${i}`))
          out.owner!.push(yield* c.message("alice", `bob to alice ${i}`))
          out.owner!.push(yield* c.history({ user: "bob", peer: "alice" }))
        }
        const lobby = yield* c.history({ channel: "lobby" })
        return { out, lobby: (lobby.data.messages as Array<{ message: string }>).map((m) => m.message) }
      }),
    )
    for (const t of [...r.out.forged!, ...r.out.fakeToken!]) {
      expect(t.ok).toBe(false)
      expect(t.error).toMatch(/claimed name/)
    }
    expect(r.out.owner!.every((t) => t.ok)).toBe(true)
    expect(r.lobby).toEqual(["bob 0", "bob 1"])
  })

  it("deliver private messages to a claimed name only to its logged-in clients: nobody else can read them on the proxy", async () => {
    await session((c) => c.login("carol", "carol pw"))
    await new Promise((r) => setTimeout(r, 500))
    let received: Array<string> = []
    const frames = await eavesdrop(() =>
      session((c) =>
        Effect.gen(function* () {
          yield* c.login("carol", "carol pw")
          yield* Effect.sleep(Duration.millis(300))
          for (let i = 0; i < 4; i++) expect((yield* c.message("carol", `secret ${i}`)).ok).toBe(true)
          const got: Array<string> = []
          yield* Effect.gen(function* () {
            while (got.length < 4) {
              const p = yield* Queue.take(c.publications)
              if (p.service === "message") got.push(p.message)
            }
          }).pipe(Effect.timeoutOption(Duration.millis(3_000)))
          received = got
        }),
      ),
    )
    expect(received.sort()).toEqual(["secret 0", "secret 1", "secret 2", "secret 3"])
    // The eavesdropper saw frames (replication among them), but not one readable secret, on any topic.
    expect(frames.length).toBeGreaterThan(0)
    expect(frames.some((f) => f.topic === "carol")).toBe(false)
    expect(frames.some((f) => f.payload.includes("secret "))).toBe(false)
    expect(frames.filter((f) => f.topic === "replication").length).toBeGreaterThan(0)
    for (const f of frames.filter((f) => f.topic === "replication" || f.topic.startsWith("~"))) expect(decode(f.payload).ok).toBe(false)
  })
})

describe("a cluster that requires accounts", () => {
  let strict: Cluster
  beforeAll(async () => {
    strict = await startCluster("127.81.38.1", 1, { serverArgs: ["--require-accounts"] })
  }, 60_000)

  it("refuses a login without a password, and acting as a name nobody claimed; serves a claimed one", async () => {
    const r = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const c = yield* makeClient({ ...defaultClientConfig, broker: strict.brokerFrontend, proxy: strict.proxyBackend })
          const bare = yield* c.login("dave")
          const unclaimed = yield* c.call("publish", { user: "erin", channel: "general", message: "hi" })
          const claimed = yield* c.login("dave", "pw")
          const channel = yield* c.channel("general")
          const post = yield* c.publish("general", "hi")
          return { bare, unclaimed, claimed, channel, post }
        }),
      ).pipe(Effect.provide(layerZmq())),
    )
    expect(r.bare.ok).toBe(false)
    expect(r.bare.error).toMatch(/requires accounts/)
    expect(r.unclaimed.ok).toBe(false)
    expect(r.claimed.ok && r.channel.ok && r.post.ok).toBe(true)
  })
})
