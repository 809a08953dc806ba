import { Context, Data, Effect, Layer } from "effect"
import type { Cursor, Post } from "../protocol/messages.ts"
import { Limits } from "../protocol/limits.ts"
import { type Op, postOf } from "../protocol/ops.ts"
import { type Key, keyHigh, type OrderedKv, openLmdb, openMemory } from "./OrderedKv.ts"

export class StoreError extends Data.TaggedError("StoreError")<{
  readonly reason: "Io" | "Closed"
  readonly message: string
  /** The system error code, when there is one (ENOSPC: the disk is full). */
  readonly code?: string | undefined
}> {}

export type HistoryQuery =
  | { readonly channel: string; readonly before?: Cursor; readonly after?: Cursor; readonly limit?: number }
  | { readonly user: string; readonly peer: string; readonly before?: Cursor; readonly after?: Cursor; readonly limit?: number }

export interface HistoryPage {
  /** Ascending in the total order (clock, origin, seq). */
  readonly posts: ReadonlyArray<Post>
  /** More entries exist beyond this page, in the direction asked. */
  readonly more: boolean
}

export interface StoreShape {
  /** Makes an op durable (with its derived indexes) unless it is already stored. */
  readonly apply: (op: Op) => Effect.Effect<"applied" | "duplicate", StoreError>
  /**
   * Makes ops durable in one transaction: all of them or none. What they
   * change (users, channels, the vector, history) is visible only once the
   * transaction is on disk, so nothing a read returns can be lost to a crash.
   * `committed` is called when the transaction is committed (it can no
   * longer fail and is ordered before every later one; see OrderedKv.write).
   */
  readonly applyAll: (ops: ReadonlyArray<Op>, committed?: () => void) => Effect.Effect<ReadonlyArray<"applied" | "duplicate">, StoreError>
  readonly hasUser: (name: string) => boolean
  /** The seq of `origin`'s last stored post on `channel` (0: none): what its next post's `prev` is. */
  readonly lastPost: (origin: string, channel: string) => number
  /** The claim that holds on a name (the first account op in the total order), if it is claimed. */
  readonly account: (name: string) => Extract<Op, { kind: "account" }> | undefined
  readonly hasChannel: (name: string) => boolean
  readonly users: () => ReadonlyArray<string>
  readonly channels: () => ReadonlyArray<string>
  /** Highest sequence number stored for an origin (0 for none). */
  readonly lastSeq: (origin: string) => number
  /** Highest Lamport clock of any stored op, so a restarted server resumes above it. */
  readonly maxClock: () => number
  /**
   * The op a client request id produced, if any. If a retry was applied on
   * two servers (the first reply was lost, the retry landed elsewhere before
   * replication), both ops are kept in the log but only the first in the
   * total order (clock, origin, seq) counts: it is the one shown in history
   * and returned here, on every replica, whatever order the ops arrived in.
   * Durable ops only: an op still being written is not an answer yet.
   */
  readonly opForRequest: (id: string) => Op | undefined
  /** Per origin, the highest seq up to which every op is stored durably (the replication vector). */
  readonly vector: () => ReadonlyMap<string, number>
  /** Every origin with a stored op. */
  readonly origins: () => ReadonlyArray<string>
  /** Stored ops of `origin` with seq > `afterSeq`, ascending, at most `limit`. */
  readonly opsAfter: (origin: string, afterSeq: number, limit: number) => ReadonlyArray<Op>
  readonly history: (query: HistoryQuery) => Effect.Effect<HistoryPage, StoreError>
  readonly opCount: () => number
}

export class Store extends Context.Service<Store, StoreShape>()("bulletin/Store") {}

const opKey = (origin: string, seq: number): Key => ["op", origin, seq]
const pairOf = (a: string, b: string): [string, string] => (a < b ? [a, b] : [b, a])

const historyPrefix = (q: HistoryQuery): Key => ("channel" in q ? ["h", "c", q.channel] : ["h", "p", ...pairOf(q.user, q.peer)])

const cursorKey = (c: Cursor): Key => (typeof c === "number" ? [c] : c)

/**
 * The persisted indexes (keys under "ix"), written in the same transaction as
 * the ops they index, so that opening a store reads them instead of scanning
 * every op (open time and memory that do not grow with history):
 *   ["ix", "version"]                         indexVersion once every index below is complete
 *   ["ix", "user", name] / ["ix", "channel", name]
 *   ["ix", "origin", origin] -> { prefix }    a LOWER BOUND of the origin's stored prefix: the durable
 *                                             prefix when a batch with its ops was issued (always safe;
 *                                             open scans the origin's ops past it for the exact figure)
 *   ["ix", "post", origin, channel, seq]      one per post: an origin's last post on a channel
 *   ["ix", "account", user, clock, origin, seq] -> op   every claim of a name, in the total order
 *   ["ix", "clock", maxClock, origin, seq]    one per batch: the highest clock of its ops (an op's
 *                                             clock does not grow with its seq: numbers are given at write)
 * Only facts about single ops and lower bounds are written, never a
 * read-modify-write aggregate: two batches in flight, or one that fails,
 * cannot leave an index that claims more than is stored.
 */
const indexVersion = 1

/** The Store over any ordered key-value disk. Reads its persisted indexes at open (or scans once, for a store from before them). */
export const makeStore = (kv: OrderedKv): StoreShape => {
  const users = new Set<string>()
  // Read lazily from the persisted index and cached; kept current as batches become durable.
  const accounts = new Map<string, Extract<Op, { kind: "account" }> | null>()
  const lastPosts = new Map<string, number>()
  const postKey = (origin: string, channel: string) => `${origin}\u0000${channel}`
  /** Keeps the caches of claims and last posts current as an op becomes durable (entries not cached are read when asked). */
  const updateCaches = (op: Op) => {
    if (op.kind === "publish") {
      const k = postKey(op.origin, op.channel)
      const known = lastPosts.get(k)
      if (known !== undefined && known < op.seq) lastPosts.set(k, op.seq)
    }
    if (op.kind !== "account" || !accounts.has(op.user)) return
    const held = accounts.get(op.user)
    if (held === null || held === undefined || compareOps(op, held) < 0) accounts.set(op.user, op)
  }
  const accountOf = (name: string) => {
    const cached = accounts.get(name)
    if (cached !== undefined) return cached ?? undefined
    let first: Extract<Op, { kind: "account" }> | undefined
    for (const { value } of kv.range({ start: ["ix", "account", name], end: ["ix", "account", name, keyHigh], limit: 1 })) first = value as Extract<Op, { kind: "account" }>
    if (accounts.size > 100_000) accounts.clear()
    accounts.set(name, first ?? null)
    return first
  }
  const lastPostOf = (origin: string, channel: string) => {
    const k = postKey(origin, channel)
    const cached = lastPosts.get(k)
    if (cached !== undefined) return cached
    let last = 0
    for (const { key } of kv.range({ start: ["ix", "post", origin, channel, keyHigh], end: ["ix", "post", origin, channel], reverse: true, limit: 1 })) last = key[4] as number
    if (lastPosts.size > 100_000) lastPosts.clear()
    lastPosts.set(k, last)
    return last
  }
  const channels = new Set<string>()
  const heads = new Map<string, number>()
  let maxClock = 0
  let opCount = 0
  // Ops whose batch is still flushing: LMDB reads do not see them yet, and
  // neither do the indexes below (they change once the batch is durable).
  const inflight = new Set<string>()
  const inflightRequests = new Map<string, Op>()
  // The replication vector: per origin, every seq up to `prefix` is stored;
  // `above` holds stored seqs past a gap.
  const prefix = new Map<string, number>()
  const above = new Map<string, Set<number>>()
  const advance = (origin: string, seq: number) => {
    let p = prefix.get(origin) ?? 0
    if (seq <= p) return
    let rest = above.get(origin)
    if (seq !== p + 1) {
      if (rest === undefined) above.set(origin, (rest = new Set()))
      rest.add(seq)
      return
    }
    p = seq
    while (rest?.delete(p + 1)) p += 1
    prefix.set(origin, p)
  }
  /** The index entries of one op (every one a fact about that op alone). */
  const indexEntries = (op: Op): Array<readonly [Key, unknown]> => {
    const out: Array<readonly [Key, unknown]> = [[["ix", "origin", op.origin], { prefix: prefix.get(op.origin) ?? 0 }]]
    if (op.kind === "user") out.push([["ix", "user", op.user], 1])
    if (op.kind === "channel") out.push([["ix", "channel", op.channel], 1])
    if (op.kind === "publish") out.push([["ix", "post", op.origin, op.channel, op.seq], 1])
    if (op.kind === "account") out.push([["ix", "account", op.user, op.clock, op.origin, op.seq], op])
    return out
  }
  const learn = (op: Op) => {
    opCount += 1
    advance(op.origin, op.seq)
    heads.set(op.origin, Math.max(heads.get(op.origin) ?? 0, op.seq))
    maxClock = Math.max(maxClock, op.clock)
    if (op.kind === "user") users.add(op.user)
    if (op.kind === "channel") channels.add(op.channel)
    updateCaches(op)
  }

  if (kv.get(["ix", "version"]) === indexVersion) {
    for (const { key } of kv.range({ start: ["ix", "user"], end: ["ix", "user", keyHigh] })) users.add(key[2] as string)
    for (const { key } of kv.range({ start: ["ix", "channel"], end: ["ix", "channel", keyHigh] })) channels.add(key[2] as string)
    for (const { key, value } of kv.range({ start: ["ix", "origin"], end: ["ix", "origin", keyHigh] })) {
      const origin = key[2] as string
      const p = Math.max(0, Number((value as { prefix?: unknown }).prefix) || 0)
      if (p > 0) {
        prefix.set(origin, p)
        heads.set(origin, p)
        opCount += p
      }
      // The exact figures: the origin's ops past the recorded lower bound (the last batches, and any past a gap).
      for (const { value: v } of kv.range({ start: opKey(origin, p + 1), end: ["op", origin, keyHigh] })) learn(v as Op)
    }
    for (const { key } of kv.range({ start: ["ix", "clock", keyHigh], end: ["ix", "clock"], reverse: true, limit: 1 })) maxClock = Math.max(maxClock, key[2] as number)
  } else {
    // A store from before the persisted indexes (or a new one): scan every op, then write the indexes once.
    const entries: Array<readonly [Key, unknown]> = []
    for (const { value } of kv.range({ start: ["op"], end: ["op", keyHigh] })) {
      const op = value as Op
      learn(op)
      for (const e of indexEntries(op)) if (e[0][1] !== "origin") entries.push(e)
    }
    for (const [origin, p] of prefix) entries.push([["ix", "origin", origin], { prefix: p }])
    for (const origin of heads.keys()) if (!prefix.has(origin)) entries.push([["ix", "origin", origin], { prefix: 0 }])
    entries.push([["ix", "clock", maxClock, "", 0], 1], [["ix", "version"], indexVersion])
    // If this write is lost (a crash now), the next open scans again.
    try {
      kv.write(entries, () => {})
    } catch {
      /* the next open scans again */
    }
  }

  const applyAll = (ops: ReadonlyArray<Op>, committed?: () => void) =>
    Effect.suspend(() => {
      const outcomes: Array<"applied" | "duplicate"> = []
      const fresh: Array<Op> = []
      const refs: Array<string> = []
      const entries: Array<readonly [Key, unknown]> = []
      const claimed: Array<string> = []
      for (const op of ops) {
        const ref = `${op.origin}\u0000${op.seq}`
        if (inflight.has(ref) || kv.get(opKey(op.origin, op.seq)) !== undefined) {
          outcomes.push("duplicate")
          continue
        }
        outcomes.push("applied")
        inflight.add(ref)
        refs.push(ref)
        fresh.push(op)
        entries.push([opKey(op.origin, op.seq), op], ...indexEntries(op))
        // One op per request id counts: the first in the total order.
        const rival = op.id === undefined ? undefined : winnerOf(op.id)
        const wins = rival === undefined || compareOps(op, rival) < 0
        if (op.id !== undefined && wins) {
          inflightRequests.set(op.id, op)
          claimed.push(op.id)
          entries.push([["req", op.id], [op.origin, op.seq]])
          const lost = rival === undefined ? undefined : historyKey(rival)
          if (lost !== undefined) entries.push([lost, undefined])
        }
        const shown = wins ? historyKey(op) : undefined
        if (shown !== undefined) entries.push([shown, postOf(op)])
      }
      if (fresh.length === 0) {
        committed?.()
        return Effect.succeed(outcomes)
      }
      entries.push([["ix", "clock", fresh.reduce((m, op) => Math.max(m, op.clock), 0), fresh[0]!.origin, fresh[0]!.seq], 1])
      const settle = () => {
        for (const ref of refs) inflight.delete(ref)
        for (const id of claimed) if (fresh.includes(inflightRequests.get(id)!)) inflightRequests.delete(id)
      }
      return Effect.callback<ReadonlyArray<"applied" | "duplicate">, StoreError>((resume) => {
        try {
          kv.write(entries, (error) => {
            settle()
            if (error !== undefined) return resume(Effect.fail(new StoreError({ reason: "Io", message: `write failed: ${error.message}`, code: (error as { code?: string }).code })))
            // Durable now: from here on reads may see it (and it survives a crash).
            for (const op of fresh) {
              learn(op)
            }
            resume(Effect.succeed(outcomes))
          }, committed)
        } catch (e) {
          settle()
          resume(Effect.fail(new StoreError({ reason: "Io", message: `write failed: ${(e as Error).message}`, code: (e as { code?: string }).code })))
        }
      })
    })

  const apply = (op: Op) => Effect.map(applyAll([op]), (outcomes) => outcomes[0]!)

  /** The winning op for a request id, counting ops still being written (to decide the next one's fate). */
  const winnerOf = (id: string): Op | undefined => inflightRequests.get(id) ?? durableWinnerOf(id)
  const durableWinnerOf = (id: string): Op | undefined => {
    const ref = kv.get(["req", id]) as [string, number] | undefined
    return ref === undefined ? undefined : (kv.get(opKey(ref[0], ref[1])) as Op | undefined)
  }

  const history = (q: HistoryQuery) =>
    Effect.try({
      try: (): HistoryPage => {
        const prefix = historyPrefix(q)
        const limit = Math.min(q.limit ?? Limits.historyLimitDefault, Limits.historyLimitMax)
        const take = (it: Iterable<{ key: Key; value: unknown }>, skip: Key | undefined) => {
          const out: Array<Post> = []
          let more = false
          for (const { key, value } of it) {
            if (skip !== undefined && key.length === prefix.length + 3 && cursorEquals(key.slice(prefix.length), skip)) continue
            if (out.length === limit) { more = true; break }
            out.push(value as Post)
          }
          return { out, more }
        }
        if (q.after !== undefined) {
          const c = cursorKey(q.after)
          const start = typeof q.after === "number" ? [...prefix, q.after + 1] : [...prefix, ...c]
          const { out, more } = take(kv.range({ start, end: [...prefix, keyHigh], limit: limit + 2 }), typeof q.after === "number" ? undefined : c)
          return { posts: out, more }
        }
        const start = q.before === undefined ? [...prefix, keyHigh] : [...prefix, ...cursorKey(q.before)]
        const skip = q.before === undefined || typeof q.before === "number" ? undefined : cursorKey(q.before)
        const { out, more } = take(kv.range({ start, end: prefix, reverse: true, limit: limit + 2 }), skip)
        return { posts: out.reverse(), more }
      },
      catch: (e) => new StoreError({ reason: "Io", message: `history read failed: ${(e as Error).message}` }),
    })

  return {
    apply,
    applyAll,
    hasUser: (n) => users.has(n),
    account: accountOf,
    lastPost: lastPostOf,
    hasChannel: (n) => channels.has(n),
    users: () => [...users].sort(),
    channels: () => [...channels].sort(),
    lastSeq: (origin) => heads.get(origin) ?? 0,
    maxClock: () => maxClock,
    opForRequest: durableWinnerOf,
    vector: () => new Map(prefix),
    origins: () => [...heads.keys()],
    opsAfter: (origin, afterSeq, limit) =>
      [...kv.range({ start: opKey(origin, afterSeq + 1), end: ["op", origin, keyHigh], limit })].map((e) => e.value as Op),
    history,
    opCount: () => opCount,
  }
}

/** The total order of history: (clock, origin, seq). */
export const compareOps = (a: Op, b: Op) => a.clock - b.clock || (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0) || a.seq - b.seq

/** Where an op shows in history (posts and private messages only). */
const historyKey = (op: Op): Key | undefined => {
  const order = [op.clock, op.origin, op.seq]
  if (op.kind === "publish") return ["h", "c", op.channel, ...order]
  if (op.kind === "message") return ["h", "p", ...pairOf(op.src, op.dst), ...order]
  return undefined
}

const cursorEquals = (a: Key, b: Key) => a.length === b.length && a.every((x, i) => x === b[i])

/** A store in `dir` on disk, closed with its scope. */
export const layerLmdb = (dir: string) =>
  Layer.effect(
    Store,
    Effect.acquireRelease(
      Effect.try({
        try: () => openLmdb(dir),
        catch: (e) => new StoreError({ reason: "Io", message: `cannot open store at ${dir}: ${(e as Error).message}` }),
      }),
      (kv) => Effect.promise(() => kv.close()),
    ).pipe(Effect.map(makeStore)),
  )

export const layerMemory = () => Layer.sync(Store, () => makeStore(openMemory()))
