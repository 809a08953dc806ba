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
   * Writes every entry or none (a value of `undefined` deletes the key).
   * Resolves once the batch is on disk; a layer that is durable at once (the
   * memory layer) returns undefined, so a store over it runs synchronously.
   */
  readonly write: (entries: ReadonlyArray<readonly [Key, unknown]>) => Promise<void> | undefined
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

/** On disk. LMDB is copy-on-write: a crash leaves the last committed batch, never a torn one. */
export const openLmdb = (path: string): OrderedKv => {
  const db: RootDatabase = open({ path, compression: false })
  return {
    get: (key) => db.get(key as Array<KeyPart>),
    range: ({ start, end, reverse, limit }) =>
      db.getRange({ start: start as Array<KeyPart>, end: end as Array<KeyPart>, reverse: reverse ?? false, ...(limit === undefined ? {} : { limit }) }) as Iterable<{ key: Key; value: unknown }>,
    // lmdb-js commits every put issued in one event-loop turn as one
    // transaction; `flushed` resolves when that transaction is synced to disk.
    // (Its callback form, `transaction(fn)`, hangs with lmdb 3.5.6 on Node 20.)
    write: async (entries) => {
      for (const [k, v] of entries) void (v === undefined ? db.remove(k as Array<KeyPart>) : db.put(k as Array<KeyPart>, v))
      await db.flushed
    },
    close: () => db.close(),
  }
}

/** In memory: a sorted array. Everything written is "durable" until the process dies. */
export const openMemory = (): OrderedKv => {
  const entries: Array<{ key: Key; value: unknown }> = []
  const find = (key: Key): { index: number; found: boolean } => {
    let lo = 0
    let hi = entries.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (compareKeys(entries[mid]!.key, key) < 0) lo = mid + 1
      else hi = mid
    }
    return { index: lo, found: lo < entries.length && compareKeys(entries[lo]!.key, key) === 0 }
  }
  return {
    get: (key) => {
      const { index, found } = find(key)
      return found ? entries[index]!.value : undefined
    },
    range: function* ({ start, end, reverse, limit }) {
      let count = 0
      const max = limit ?? Number.POSITIVE_INFINITY
      if (!reverse) {
        for (let i = find(start).index; i < entries.length && count < max; i++, count++) {
          const e = entries[i]!
          if (compareKeys(e.key, end) >= 0) return
          yield e
        }
      } else {
        const s = find(start)
        for (let i = s.found ? s.index : s.index - 1; i >= 0 && count < max; i--, count++) {
          const e = entries[i]!
          if (compareKeys(e.key, end) <= 0) return
          yield e
        }
      }
    },
    write: (batch) => {
      for (const [key, value] of batch) {
        const { index, found } = find(key)
        if (value === undefined) {
          if (found) entries.splice(index, 1)
        } else if (found) entries[index] = { key, value }
        else entries.splice(index, 0, { key, value })
      }
      return undefined
    },
    close: async () => {},
  }
}
