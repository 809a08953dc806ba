import { Effect, Exit } from "effect"
import { describe, expect, it } from "vitest"
import { ReplicationNode, defaultReplicationConfig, storeReads } from "../../src/actors/replication.ts"
import { LamportClock } from "../../src/machines/lamport.ts"
import type { Op } from "../../src/protocol/ops.ts"
import { Scheduler } from "../../src/sim/scheduler.ts"
import { MemoryDisk } from "../../src/store/OrderedKv.ts"
import { makeStore } from "../../src/store/Store.ts"

/** The simulator's disk: LMDB's crash semantics, and the faults it can inject. */
const disk = (flushMs = 5) => {
  const sched = new Scheduler()
  const d = new MemoryDisk({ after: (ms, fn) => void sched.after(ms, fn), immediate: (fn) => void sched.immediate(fn) }, () => flushMs)
  return { sched, d, run: (ms: number) => sched.runUntil(sched.now + ms, 100_000) }
}
const post = (seq: number, message = `m${seq}`): Op => ({ kind: "publish", user: "u", channel: "c", message, origin: "s1", seq, clock: seq, timestamp: 0 })

describe("the memory disk", () => {
  it("makes a batch durable, and visible, only when its flush completes; a crash loses the rest", () => {
    const { d, run } = disk(5)
    const done: Array<string> = []
    d.write([[["k", 1], "a"]], (e) => done.push(e === undefined ? "a" : "a failed"))
    run(2)
    expect(d.get(["k", 1])).toBeUndefined()
    run(5)
    expect(d.get(["k", 1])).toBe("a")
    d.write([[["k", 2], "b"]], (e) => done.push(e === undefined ? "b" : "b failed"))
    run(2)
    d.crash()
    run(20)
    expect(d.get(["k", 2])).toBeUndefined()
    // The killed process never hears about b.
    expect(done).toEqual(["a"])
  })

  it("fails the next transaction with EIO, and every one with ENOSPC while full; a failed one writes nothing", () => {
    const { d, run } = disk(1)
    const outcomes: Array<string> = []
    const write = (k: number) => d.write([[["k", k], k]], (e) => outcomes.push(e === undefined ? `${k} ok` : `${k} ${(e as { code?: string }).code}`))
    d.failNextWrite()
    write(1)
    run(5)
    write(2)
    run(5)
    d.setFull(true)
    write(3)
    run(5)
    write(4)
    run(5)
    d.setFull(false)
    write(5)
    run(5)
    expect(outcomes).toEqual(["1 EIO", "2 ok", "3 ENOSPC", "4 ENOSPC", "5 ok"])
    expect([1, 2, 3, 4, 5].map((k) => d.get(["k", k]))).toEqual([undefined, 2, undefined, undefined, 5])
  })

  it("ignores writes through a handle of a crashed incarnation", () => {
    const { d, run } = disk(1)
    const old = d.session()
    d.crash()
    old.write([[["k", 1], "ghost"]], () => {})
    d.session().write([[["k", 2], "live"]], () => {})
    run(5)
    expect(d.get(["k", 1])).toBeUndefined()
    expect(d.get(["k", 2])).toBe("live")
  })
})

describe("a failed write", () => {
  it("leaves the store as it was: no user, channel, position or sequence number taken", () => {
    const { d, run } = disk(1)
    const store = makeStore(d.session())
    d.failNextWrite()
    const exits: Array<Exit.Exit<unknown, unknown>> = []
    Effect.runFork(store.applyAll([{ kind: "user", user: "ana", origin: "s1", seq: 1, clock: 1, timestamp: 0 }, post(2)])).addObserver((e) => exits.push(e))
    run(5)
    expect(Exit.isFailure(exits[0]!)).toBe(true)
    expect(store.hasUser("ana")).toBe(false)
    expect(store.lastSeq("s1")).toBe(0)
    expect(store.vector().get("s1")).toBeUndefined()
  })

  it("consumes no sequence number: the next op of the origin takes the number the failed one had", () => {
    const { sched, d, run } = disk(1)
    const store = makeStore(d.session())
    const node = new ReplicationNode(defaultReplicationConfig("s1"), {
      net: { request: (_to, _frame, _ms, _lane, done) => done(undefined), publish: () => {} },
      clock: sched.xstateClock(),
      lamport: new LamportClock(),
      now: () => 0,
      elapsedNow: () => sched.now,
      store: { ...storeReads(store), apply: (ops, done) => void Effect.runFork(store.applyAll(ops)).addObserver((e) => (Exit.isSuccess(e) ? done() : done(e.cause))) },
    })
    const results: Array<string> = []
    const commit = (message: string) =>
      node.commit({ kind: "publish", user: "u", channel: "c", message, clock: 1, timestamp: 0 }, (error, op) => results.push(error === undefined ? `${message}: seq ${op!.seq}` : `${message}: failed`))
    commit("a")
    run(5)
    d.failNextWrite()
    commit("b")
    run(5)
    commit("b again")
    commit("c")
    run(5)
    expect(results).toEqual(["a: seq 1", "b: failed", "b again: seq 2", "c: seq 3"])
    expect(store.vector().get("s1")).toBe(3)
  })

  it("pipelines own batches: the next is issued at the commit of the one before, and a failed commit still burns no number", () => {
    const { sched, d, run } = disk(10)
    const store = makeStore(d.session())
    const published: Array<number> = []
    const node = new ReplicationNode(defaultReplicationConfig("s1"), {
      net: { request: (_to, _frame, _ms, _lane, done) => done(undefined), publish: () => published.push(published.length) },
      clock: sched.xstateClock(),
      lamport: new LamportClock(),
      now: () => 0,
      elapsedNow: () => sched.now,
      store: {
        ...storeReads(store),
        apply: (ops, done, committed) => void Effect.runFork(store.applyAll(ops, committed)).addObserver((e) => (Exit.isSuccess(e) ? done() : done(e.cause))),
      },
    })
    const results: Array<string> = []
    const commit = (message: string) =>
      node.commit({ kind: "publish", user: "u", channel: "c", message, clock: 1, timestamp: 0 }, (error, op) =>
        results.push(error === undefined ? `${message}: seq ${op!.seq} prev ${(op as { prev?: number }).prev} at ${sched.now}` : `${message}: failed at ${sched.now}`),
      )
    commit("a")
    run(1)
    // a is committed and flushing (10 ms): b is issued now, not after a's flush.
    commit("b")
    run(1)
    d.failNextWrite()
    commit("c")
    run(1)
    commit("d")
    run(40)
    // Durable in order, one flush after another (a at 10, b at 20), c refused at its commit, d took c's number.
    expect(results).toEqual(["c: failed at 2", "a: seq 1 prev 0 at 10", "b: seq 2 prev 1 at 20", "d: seq 3 prev 2 at 30"])
    expect(store.vector().get("s1")).toBe(3)
    expect(store.opsAfter("s1", 0, 10).map((op) => op.seq)).toEqual([1, 2, 3])
    expect(published).toHaveLength(3)
  })
})
