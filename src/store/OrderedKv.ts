import { open, type RootDatabase } from "lmdb"

/**
 * The little a Store needs from a disk: ordered tuple keys, range scans, and
 * an atomic durable batch. Two implementations: LMDB on disk, and memory for
 * the simulator and unit tests.
 */
export type KeyPart = string | number
export type Key = ReadonlyArray<KeyPart>

/** Sorts after every number and every legal name (names cannot contain U+FFFF). */
export const keyHigh = "\uffff"

export interface RangeOptions {
  readonly start: Key
  readonly end: Key
  readonly reverse?: boolean
  readonly limit?: number
}

export interface OrderedKv {
  readonly get: (key: Key) => unknown
  /** `start` inclusive, `end` exclusive, in key order (or reverse). */
  readonly range: (options: RangeOptions) => Iterable<{ readonly key: Key; readonly value: unknown }>
  /**
   * Writes every entry or none (a value of `undefined` deletes the key), and
   * calls `done` once the batch is on disk, or with the error that kept it
   * off (then nothing of it was written). Reads see a batch only once it is
   * durable. `done` may be called at once (a disk with no flush latency).
   * `committed`, if given, is called first, once the batch is committed:
   * it can no longer fail, and it will be durable before any batch written
   * after it (batches become durable in the order they commit; a crash
   * loses a suffix of them, never one in the middle). So a writer may issue
   * its next batch on `committed` without waiting for the flush. A failed
   * batch never calls `committed`.
   * Callbacks, not promises: the simulator runs this code on simulated
   * time, where nothing may wait on the real event loop's microtasks.
   */
  readonly write: (entries: ReadonlyArray<readonly [Key, unknown]>, done: (error?: Error) => void, committed?: () => void) => void
  readonly close: () => Promise<void>
}

const comparePart = (a: KeyPart, b: KeyPart): number => {
  if (typeof a === "number" && typeof b === "number") return a - b
  if (typeof a === "number") return -1
  if (typeof b === "number") return 1
  return a < b ? -1 : a > b ? 1 : 0
}

/** The order of lmdb's ordered-binary keys: element-wise, numbers before strings, a prefix first. */
export const compareKeys = (a: Key, b: Key): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const c = comparePart(a[i]!, b[i]!)
    if (c !== 0) return c
  }
  return a.length - b.length
}

/**
 * lmdb-js also rejects, with "Commit failed (see commitError for details)",
 * a promise of its own that nobody can hold (seen on a full disk: every
 * failed commit). Unhandled, it would end the process, so this listener
 * swallows exactly those; any other unhandled rejection is thrown again, as
 * Node does without a listener (the process dies of it, as it should).
 */
let lmdbRejectionsGuarded = false
const guardLmdbRejections = () => {
  if (lmdbRejectionsGuarded) return
  lmdbRejectionsGuarded = true
  process.on("unhandledRejection", (reason) => {
    const commitError = (reason as { commitError?: PromiseLike<unknown> } | undefined)?.commitError
    if (reason instanceof Error && reason.message.startsWith("Commit failed") && commitError !== undefined) {
      Promise.resolve(commitError).catch(() => {})
      return
    }
    throw reason
  })
}

/** On disk. LMDB is copy-on-write: a crash leaves the last committed batch, never a torn one. */
export const openLmdb = (path: string): OrderedKv => {
  guardLmdbRejections()
  // A folder always, whatever its name looks like (lmdb-js takes a path ending in `.a` for a file).
  const db: RootDatabase = open({ path, compression: false, noSubdir: false })
  return {
    get: (key) => db.get(key as Array<KeyPart>),
    range: ({ start, end, reverse, limit }) =>
      db.getRange({ start: start as Array<KeyPart>, end: end as Array<KeyPart>, reverse: reverse ?? false, ...(limit === undefined ? {} : { limit }) }) as Iterable<{ key: Key; value: unknown }>,
    // lmdb-js commits every put issued in one event-loop turn as one
    // transaction; each put's promise settles with that transaction, and
    // `flushed` resolves when it is synced to disk. Every promise is
    // awaited: a failed commit (a full disk) must reach the caller, not
    // become an unhandled rejection that kills the process.
    // (Its callback form, `transaction(fn)`, hangs with lmdb 3.5.6 on Node 20.)
    // The puts settle when their transaction commits (a failure is reported
    // there, ENOSPC); with overlappingSync (lmdb-js's default) the sync to
    // disk follows, in commit order, and `flushed` resolves after it.
    write: (entries, done, committed) => {
      let puts: Array<Promise<unknown>>
      try {
        puts = entries.map(([k, v]) => (v === undefined ? db.remove(k as Array<KeyPart>) : db.put(k as Array<KeyPart>, v)))
      } catch (e) {
        return done(e as Error)
      }
      Promise.all(puts)
        .then(() => {
          committed?.()
          return db.flushed
        })
        .then(
          () => done(),
          (e: unknown) => commitFailure(e).then(done),
        )
    },
    close: () => db.close(),
  }
}

const errnoNames: Record<number, string> = { 5: "EIO", 28: "ENOSPC", 122: "EDQUOT", 30: "EROFS" }

/**
 * lmdb-js rejects a failed commit's puts with "Commit failed (see
 * commitError for details)" and the cause in a second promise, `commitError`,
 * which must be awaited too (unawaited, it is an unhandled rejection: the
 * process dies). The cause comes with a numeric errno: named here.
 */
const commitFailure = async (e: unknown): Promise<Error> => {
  const pending = (e as { commitError?: PromiseLike<unknown> } | undefined)?.commitError
  let cause: unknown = e
  if (pending !== undefined && typeof pending.then === "function") {
    try {
      await pending
    } catch (inner) {
      cause = inner
    }
  }
  const error = cause instanceof Error ? cause : new Error(String(cause))
  const code = (error as { code?: unknown }).code
  const name = typeof code === "number" ? errnoNames[code] : typeof code === "string" ? code : undefined
  return Object.assign(new Error(name === undefined ? error.message : `${name}: ${error.message}`), { code: name })
}

/** Sorted entries in memory: the durable state of a memory disk. */
class SortedEntries {
  readonly entries: Array<{ key: Key; value: unknown }> = []

  find(key: Key): { index: number; found: boolean } {
    const entries = this.entries
    let lo = 0
    let hi = entries.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (compareKeys(entries[mid]!.key, key) < 0) lo = mid + 1
      else hi = mid
    }
    return { index: lo, found: lo < entries.length && compareKeys(entries[lo]!.key, key) === 0 }
  }

  get(key: Key): unknown {
    const { index, found } = this.find(key)
    return found ? this.entries[index]!.value : undefined
  }

  *range({ start, end, reverse, limit }: RangeOptions): Iterable<{ key: Key; value: unknown }> {
    const entries = this.entries
    let count = 0
    const max = limit ?? Number.POSITIVE_INFINITY
    if (!reverse) {
      for (let i = this.find(start).index; i < entries.length && count < max; i++, count++) {
        const e = entries[i]!
        if (compareKeys(e.key, end) >= 0) return
        yield e
      }
    } else {
      const s = this.find(start)
      for (let i = s.found ? s.index : s.index - 1; i >= 0 && count < max; i--, count++) {
        const e = entries[i]!
        if (compareKeys(e.key, end) <= 0) return
        yield e
      }
    }
  }

  apply(batch: ReadonlyArray<readonly [Key, unknown]>): void {
    for (const [key, value] of batch) {
      const { index, found } = this.find(key)
      if (value === undefined) {
        if (found) this.entries.splice(index, 1)
      } else if (found) this.entries[index] = { key, value }
      else this.entries.splice(index, 0, { key, value })
    }
  }
}

/** What drives a memory disk's flushes: the simulator's clock and its end-of-turn queue. */
export interface DiskTimers {
  /** Calls `fn` after `ms` of (simulated) time. */
  readonly after: (ms: number, fn: () => void) => void
  /** Calls `fn` once the current turn is over (what lmdb-js waits for before it commits a batch). */
  readonly immediate: (fn: () => void) => void
}

type Txn = Array<{ readonly entries: ReadonlyArray<readonly [Key, unknown]>; readonly done: (error?: Error) => void; readonly committed: (() => void) | undefined }>

export type DiskFault = "EIO" | "ENOSPC"

const diskError = (code: DiskFault) =>
  Object.assign(new Error(code === "ENOSPC" ? "ENOSPC: no space left on device, write" : "EIO: i/o error, fsync"), { code })

/**
 * A disk in memory with LMDB's crash semantics, for the simulator. Writes
 * issued in one turn form one transaction, committed at the end of the turn
 * (where it fails, if it does); committed transactions are flushed one at
 * a time, in order, each taking `flushMs()` of simulated time; a batch is
 * durable (and visible to reads) only when its flush completes. `crash()`
 * loses every batch not yet flushed, and their callbacks never fire, as a
 * killed process never hears back. Write failures can be injected: the next
 * transaction fails with EIO, or every one fails with ENOSPC while the disk
 * is full. A failed transaction writes nothing.
 */
export class MemoryDisk implements OrderedKv {
  readonly #durable = new SortedEntries()
  readonly #timers: DiskTimers
  readonly #flushMs: () => number
  #open: Txn | undefined
  readonly #queued: Array<Txn> = []
  #flushing = false
  #epoch = 0
  #failNext = false
  #full = false
  /** Transactions flushed, failed, and lost to crashes (for the simulator's statistics). */
  readonly stats = { flushed: 0, failed: 0, lostToCrash: 0 }

  constructor(timers: DiskTimers, flushMs: () => number) {
    this.#timers = timers
    this.#flushMs = flushMs
  }

  get = (key: Key) => this.#durable.get(key)
  range = (options: RangeOptions) => this.#durable.range(options)

  write = (entries: ReadonlyArray<readonly [Key, unknown]>, done: (error?: Error) => void, committed?: () => void) => {
    if (this.#open === undefined) {
      const txn: Txn = []
      this.#open = txn
      const epoch = this.#epoch
      this.#timers.immediate(() => {
        if (epoch !== this.#epoch) return
        this.#open = undefined
        // The commit: where a write fails (nothing of it is written).
        const fault: DiskFault | undefined = this.#full ? "ENOSPC" : this.#failNext ? "EIO" : undefined
        if (fault !== undefined) {
          if (fault === "EIO") this.#failNext = false
          this.stats.failed += 1
          for (const w of txn) w.done(diskError(fault))
          return
        }
        this.#queued.push(txn)
        for (const w of txn) w.committed?.()
        this.#flushNext()
      })
    }
    this.#open.push({ entries, done, committed })
  }

  close = async () => {}

  /**
   * The disk as one process incarnation sees it: after a crash, writes
   * through an older handle are ignored (a dead process writes nothing),
   * whatever fiber of it was still running.
   */
  session(): OrderedKv {
    const epoch = this.#epoch
    return {
      get: this.get,
      range: this.range,
      write: (entries, done, committed) => {
        if (epoch === this.#epoch) this.write(entries, done, committed)
      },
      close: this.close,
    }
  }

  /** The process died: every transaction not yet flushed is lost, and nobody hears of it. */
  crash(): void {
    this.#epoch += 1
    this.stats.lostToCrash += this.#queued.length + (this.#open === undefined ? 0 : 1) + (this.#flushing ? 1 : 0)
    this.#open = undefined
    this.#queued.length = 0
    this.#flushing = false
  }

  /** The next transaction to commit fails with EIO. */
  failNextWrite(): void {
    this.#failNext = true
  }

  /** While full, every transaction fails with ENOSPC; space returns with `full(false)`. */
  setFull(full: boolean): void {
    this.#full = full
  }

  get isFull(): boolean {
    return this.#full
  }

  #flushNext() {
    if (this.#flushing) return
    const txn = this.#queued.shift()
    if (txn === undefined) return
    this.#flushing = true
    const epoch = this.#epoch
    this.#timers.after(this.#flushMs(), () => {
      if (epoch !== this.#epoch) return
      this.#flushing = false
      for (const w of txn) this.#durable.apply(w.entries)
      this.stats.flushed += 1
      for (const w of txn) w.done()
      this.#flushNext()
    })
  }
}

/** In memory, durable at once: every write is on "disk" before `write` returns (unit tests). */
export const openMemory = (): OrderedKv => {
  const durable = new SortedEntries()
  return {
    get: (key) => durable.get(key),
    range: (options) => durable.range(options),
    write: (batch, done, committed) => {
      durable.apply(batch)
      committed?.()
      done()
    },
    close: async () => {},
  }
}
