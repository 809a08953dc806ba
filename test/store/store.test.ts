import { mkdirSync, mkdtempSync, readdirSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { Post } from "../../src/protocol/messages.ts"
import type { Op } from "../../src/protocol/ops.ts"
import { openLmdb, openMemory } from "../../src/store/OrderedKv.ts"
import { type HistoryPage, makeStore } from "../../src/store/Store.ts"

const run = <A>(e: Effect.Effect<A, unknown>) => Effect.runPromise(e)

const origins = ["s1", "s2", "s3"]
const channels = ["a", "ab", "b"]
const users = ["ana", "anabela", "bob"]

/** Ops as several origins would produce them: per-origin sequences, arbitrary clocks. */
const opsArb = fc
  .array(
    fc.record({
      origin: fc.constantFrom(...origins),
      clock: fc.integer({ min: 1, max: 50 }),
      kind: fc.constantFrom("publish", "message"),
      x: fc.constantFrom(0, 1, 2),
      y: fc.constantFrom(0, 1, 2),
    }),
    { maxLength: 60 },
  )
  .map((raw) => {
    const seqs = new Map<string, number>()
    return raw.map(({ origin, clock, kind, x, y }): Op => {
      const seq = (seqs.get(origin) ?? 0) + 1
      seqs.set(origin, seq)
      const base = { origin, seq, clock, timestamp: 1_700_000_000_000 + clock }
      return kind === "publish"
        ? { ...base, kind, user: users[x]!, channel: channels[y]!, message: `m${origin}${seq}` }
        : { ...base, kind, src: users[x]!, dst: users[y]!, message: `m${origin}${seq}` }
    })
  })

const order = (a: Post, b: Post) => a.clock - b.clock || (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0) || a.seq - b.seq

for (const [name, open] of [["memory", () => openMemory()], ["lmdb", () => openLmdb(mkdtempSync(join(tmpdir(), "bulletin-store-")))]] as const) {
  describe(`Store over ${name}`, () => {
    it("history is every matching op once, in (clock, origin, seq) order, and pages cover it exactly", async () => {
      await fc.assert(
        fc.asyncProperty(opsArb, fc.integer({ min: 1, max: 7 }), async (ops, limit) => {
          const store = makeStore(open())
          for (const op of ops) await run(store.apply(op))
          for (const op of ops) expect(await run(store.apply(op))).toBe("duplicate")
          for (const ch of channels) {
            const expected = ops.flatMap((o) => (o.kind === "publish" && o.channel === ch ? [o.message] : []))
            const all = await run(store.history({ channel: ch, limit: 500 }))
            expect([...all.posts].sort(order).map((p) => p.message)).toEqual(all.posts.map((p) => p.message))
            expect([...all.posts.map((p) => p.message)].sort()).toEqual([...expected].sort())
            // forward paging with `after` cursors, from the start (clock 0)
            const forward: Array<string> = []
            let after: [number, string, number] | number = 0
            for (let guard = 0; guard < 100; guard++) {
              const page: HistoryPage = await run(store.history({ channel: ch, limit, after }))
              forward.push(...page.posts.map((p) => p.message))
              const last: Post | undefined = page.posts[page.posts.length - 1]
              if (!page.more || last === undefined) break
              after = [last.clock, last.origin, last.seq]
            }
            expect(forward).toEqual(all.posts.map((p) => p.message))
            // no cursor: the latest page
            const latest = await run(store.history({ channel: ch, limit }))
            expect(latest.posts.map((p) => p.message)).toEqual(all.posts.slice(-limit).map((p) => p.message))
            // backward paging with `before` cursors
            const backward: Array<string> = []
            let before: [number, string, number] | undefined
            for (let guard = 0; guard < 100; guard++) {
              const page = await run(store.history({ channel: ch, limit, ...(before ? { before } : {}) }))
              backward.unshift(...page.posts.map((p) => p.message))
              const first = page.posts[0]
              if (!page.more || first === undefined) break
              before = [first.clock, first.origin, first.seq]
            }
            expect(backward).toEqual(all.posts.map((p) => p.message))
          }
          // private conversations are symmetric and exact ("ana" is not "anabela")
          const conv = await run(store.history({ user: "bob", peer: "ana", limit: 500 }))
          const expected = ops.filter((o) => o.kind === "message" && [o.src, o.dst].sort().join() === "ana,bob")
          expect(conv.posts.length).toBe(expected.length)
          expect((await run(store.history({ user: "ana", peer: "bob", limit: 500 }))).posts).toEqual(conv.posts)
        }),
        { numRuns: name === "lmdb" ? 20 : 100 },
      )
    })

    it("a clock-only cursor means strictly before / after that clock", async () => {
      const store = makeStore(open())
      for (const [i, clock] of [5, 5, 6, 7].entries()) {
        await run(store.apply({ kind: "publish", origin: "s1", seq: i + 1, clock, timestamp: 0, user: "u", channel: "c", message: `m${i}` }))
      }
      expect((await run(store.history({ channel: "c", before: 6 }))).posts.map((p) => p.message)).toEqual(["m0", "m1"])
      expect((await run(store.history({ channel: "c", after: 5 }))).posts.map((p) => p.message)).toEqual(["m2", "m3"])
    })

    it("users, channels, heads, clock and request ids", async () => {
      const store = makeStore(open())
      await run(store.apply({ kind: "user", origin: "s2", seq: 1, clock: 3, timestamp: 0, user: "ana" }))
      await run(store.apply({ kind: "channel", origin: "s2", seq: 2, clock: 9, timestamp: 0, channel: "lobby", id: "req-1" }))
      await run(store.apply({ kind: "user", origin: "s1", seq: 1, clock: 4, timestamp: 0, user: "ana" }))
      expect(store.users()).toEqual(["ana"])
      expect(store.channels()).toEqual(["lobby"])
      expect(store.lastSeq("s2")).toBe(2)
      expect(store.lastSeq("nobody")).toBe(0)
      expect(store.maxClock()).toBe(9)
      expect(store.opForRequest("req-1")).toMatchObject({ kind: "channel", channel: "lobby" })
      expect(store.opForRequest("req-2")).toBeUndefined()
    })
  })
}

describe("Store on disk", () => {
  it("reopens with everything that was acknowledged", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bulletin-reopen-"))
    const kv = openLmdb(dir)
    const store = makeStore(kv)
    await run(store.apply({ kind: "channel", origin: "s1", seq: 1, clock: 1, timestamp: 0, channel: "c" }))
    for (let i = 2; i <= 200; i++) await run(store.apply({ kind: "publish", origin: "s1", seq: i, clock: i, timestamp: 0, user: "u", channel: "c", message: `m${i}`, id: `r${i}` }))
    await kv.close()
    const again = makeStore(openLmdb(dir))
    expect(again.channels()).toEqual(["c"])
    expect(again.lastSeq("s1")).toBe(200)
    expect(again.maxClock()).toBe(200)
    expect(again.opCount()).toBe(200)
    expect((await run(again.history({ channel: "c", limit: 500 }))).posts).toHaveLength(199)
    expect(again.opForRequest("r77")).toMatchObject({ seq: 77 })
  })

  it("is a folder whatever its name looks like (a server named srv.a)", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "bulletin-dotted-")), "srv.a")
    mkdirSync(dir)
    const kv = openLmdb(dir)
    await run(makeStore(kv).apply({ kind: "channel", origin: "s1", seq: 1, clock: 1, timestamp: 0, channel: "c" }))
    await kv.close()
    expect(readdirSync(dir).sort()).toEqual(["data.mdb", "lock.mdb"])
    expect(makeStore(openLmdb(dir)).channels()).toEqual(["c"])
  })
})

describe("Store: replication vector and request ids", () => {
  const post = (origin: string, seq: number, clock: number, id?: string): Op => ({
    kind: "publish", user: "ana", channel: "a", message: `${origin}${seq}`, origin, seq, clock, timestamp: 1_700_000_000_000, ...(id === undefined ? {} : { id }),
  })

  it("the vector is the contiguous prefix per origin, across gaps and a reopen", async () => {
    const kv = openMemory()
    const store = makeStore(kv)
    for (const op of [post("s1", 1, 1), post("s1", 2, 2), post("s1", 4, 4), post("s2", 2, 1)]) await run(store.apply(op))
    expect([...store.vector()]).toEqual([["s1", 2]])
    expect(store.opsAfter("s1", 1, 10).map((o) => o.seq)).toEqual([2, 4])
    await run(store.apply(post("s1", 3, 3)))
    await run(store.apply(post("s2", 1, 5)))
    expect(Object.fromEntries(store.vector())).toEqual({ s1: 4, s2: 2 })
    // A restart rebuilds it from what is on "disk".
    expect(Object.fromEntries(makeStore(kv).vector())).toEqual({ s1: 4, s2: 2 })
    expect(makeStore(kv).opsAfter("s2", 0, 1).map((o) => o.seq)).toEqual([1])
  })

  it("a request applied on two servers shows once, the same one on every replica, whatever the arrival order", async () => {
    const opsWithRetries = fc
      .array(fc.record({ origin: fc.constantFrom("s1", "s2", "s3"), clock: fc.integer({ min: 1, max: 20 }), id: fc.constantFrom("r1", "r2", "r3", undefined) }), { minLength: 1, maxLength: 30 })
      .map((raw) => {
        const seqs = new Map<string, number>()
        return raw.map(({ origin, clock, id }) => {
          const seq = (seqs.get(origin) ?? 0) + 1
          seqs.set(origin, seq)
          return post(origin, seq, clock, id)
        })
      })
    await fc.assert(
      fc.asyncProperty(opsWithRetries, fc.infiniteStream(fc.nat()), async (ops, randoms) => {
        const shuffled = [...ops]
        const r = randoms[Symbol.iterator]()
        for (let i = shuffled.length - 1; i > 0; i--) {
          const j = r.next().value! % (i + 1)
          ;[shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!]
        }
        const a = makeStore(openMemory())
        const b = makeStore(openMemory())
        for (const op of ops) await run(a.apply(op))
        for (const op of shuffled) await run(b.apply(op))
        const ha = (await run(a.history({ channel: "a", limit: 500 }))).posts.map((p) => p.message)
        const hb = (await run(b.history({ channel: "a", limit: 500 }))).posts.map((p) => p.message)
        expect(hb).toEqual(ha)
        // Exactly one entry per request id, plus every op without one.
        const ids = new Set(ops.flatMap((o) => (o.id === undefined ? [] : [o.id])))
        expect(ha.length).toBe(ops.filter((o) => o.id === undefined).length + ids.size)
        for (const id of ids) expect(a.opForRequest(id)).toEqual(b.opForRequest(id))
      }),
      { numRuns: 200 },
    )
  })
})

describe("Store: persisted indexes", () => {
  /** What a store shows of itself, besides history. */
  const view = (s: ReturnType<typeof makeStore>) => ({
    users: s.users(),
    channels: s.channels(),
    vector: Object.fromEntries(s.vector()),
    heads: Object.fromEntries([...s.origins()].sort().map((o) => [o, s.lastSeq(o)])),
    maxClock: s.maxClock(),
    opCount: s.opCount(),
    accounts: users.map((u) => s.account(u)?.seq ?? null),
    lastPosts: origins.flatMap((o) => channels.map((c) => s.lastPost(o, c))),
  })
  /** The same ops without any index key: what a store from before the persisted indexes holds. */
  const opsOnly = (kv: ReturnType<typeof openMemory>) => {
    const bare = openMemory()
    bare.write([...kv.range({ start: ["op"], end: ["op", "\uffff"] })].map((e) => [e.key, e.value] as const), () => {})
    return bare
  }
  const allOps = fc
    .array(
      fc.record({
        origin: fc.constantFrom(...origins),
        clock: fc.integer({ min: 1, max: 80 }),
        kind: fc.constantFrom("publish", "user", "channel", "account", "message"),
        x: fc.constantFrom(0, 1, 2),
        skip: fc.boolean(), // leaves a gap in the origin's sequence
      }),
      { maxLength: 50 },
    )
    .map((raw) => {
      const seqs = new Map<string, number>()
      return raw.map(({ origin, clock, kind, x, skip }): Op => {
        const seq = (seqs.get(origin) ?? 0) + (skip ? 2 : 1)
        seqs.set(origin, seq)
        const base = { origin, seq, clock, timestamp: 1_700_000_000_000 + clock }
        if (kind === "publish") return { ...base, kind, user: users[x]!, channel: channels[x]!, message: `m${origin}${seq}` }
        if (kind === "message") return { ...base, kind, src: users[x]!, dst: users[(x + 1) % 3]!, message: `m${origin}${seq}` }
        if (kind === "user") return { ...base, kind, user: users[x]! }
        if (kind === "channel") return { ...base, kind, channel: channels[x]! }
        return { ...base, kind, user: users[x]!, salt: "0".repeat(32), hash: "f".repeat(64) }
      })
    })

  it("a store reopened from its indexes shows what a full scan of its ops shows, whatever the batches and gaps", async () => {
    await fc.assert(
      fc.asyncProperty(allOps, fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 10 }), async (ops, cuts) => {
        const kv = openMemory()
        const live = makeStore(kv)
        // In batches of the given sizes; some batches in flight together.
        let i = 0
        for (let b = 0; i < ops.length; b++) {
          const size = cuts[b % cuts.length]!
          await Promise.all([run(live.applyAll(ops.slice(i, i + size))), run(live.applyAll(ops.slice(i + size, i + 2 * size)))])
          i += 2 * size
        }
        const reopened = makeStore(kv)
        const scanned = makeStore(opsOnly(kv))
        expect(view(reopened)).toEqual(view(scanned))
        expect(view(reopened)).toEqual(view(live))
        // And a store from before the indexes, once migrated, reopens from them the same.
        const migrated = opsOnly(kv)
        makeStore(migrated)
        expect(view(makeStore(migrated))).toEqual(view(scanned))
      }),
      { numRuns: 200 },
    )
  })

  it("opens without scanning the ops it has indexed: only the last batches of each origin are read", () => {
    const kv = openMemory()
    const store = makeStore(kv)
    const ops: Array<Op> = Array.from({ length: 2_000 }, (_, i) => ({ kind: "publish", user: "ana", channel: "a", message: `m${i}`, origin: "s1", seq: i + 1, clock: i + 1, timestamp: 0 }))
    // 20 batches of 100, one after the other.
    return (async () => {
      for (let b = 0; b < 20; b++) await run(store.applyAll(ops.slice(b * 100, b * 100 + 100)))
      let opsRead = 0
      const counting = { ...kv, range: (q: Parameters<typeof kv.range>[0]) => {
        const it = kv.range(q)
        return (function* () {
          for (const e of it) {
            if (e.key[0] === "op") opsRead += 1
            yield e
          }
        })()
      } }
      const again = makeStore(counting)
      expect(again.lastSeq("s1")).toBe(2_000)
      expect(again.opCount()).toBe(2_000)
      expect(opsRead).toBeLessThanOrEqual(100) // the last batch: its index entry recorded the prefix before it
    })()
  })
})
