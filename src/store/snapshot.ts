import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { basename, dirname, join } from "node:path"
import { Effect, Schema } from "effect"
import { open } from "lmdb"
import { plainIssue } from "../protocol/messages.ts"
import { Op } from "../protocol/ops.ts"
import { type Key, type KeyPart, keyHigh, openLmdb } from "./OrderedKv.ts"
import { makeStore } from "./Store.ts"

/**
 * A snapshot of one server's store as JSON lines (`bulletin export` /
 * `bulletin import`):
 *
 *   {"bulletin":"snapshot","format":1,"server":"server-1","schema":1,"ops":N,"origins":{...},"derived":{...},...}
 *   {"op":{...}}            one line per stored op, in key order (origin, seq)
 *   ...
 *   {"end":{"ops":N}}
 *
 * The op log is the store's truth: every other key (history, the indexes
 * under "ix", request ids) is derived from the ops when they are written,
 * so an import writes the ops through the Store itself, which derives them
 * again, exactly as replication would. The header counts them (`derived`)
 * for information; a key of a family this version does not know is counted
 * in `other` (and `bulletin export` says so).
 *
 * Everything is read in ONE LMDB read transaction, opened read-only: a
 * snapshot of a live server is consistent (a prefix of every batch the server
 * committed, never half of one) and the server is never disturbed (LMDB lets
 * any number of readers in other processes share the environment).
 *
 * Values are JSON with tags for what JSON cannot hold, so bytes round-trip
 * exactly: {"$bytes": base64}, {"$bigint": "123"}, {"$num": "NaN"|"Infinity"|"-Infinity"|"-0"},
 * {"$date": ms}, {"$undefined": true}; a key of an object that starts with
 * "$" is written with one more "$" (so no data is ever read as a tag).
 */
export const snapshotFormat = 1

export interface OriginSummary {
  readonly ops: number
  readonly lastSeq: number
}

export interface SnapshotHeader {
  readonly bulletin: "snapshot"
  readonly format: number
  /** The data folder's OWNER (the server that wrote it), if it has one. */
  readonly server: string | null
  /** The store's index version (["ix","version"]); null for a store from before the persisted indexes. */
  readonly schema: number | null
  readonly exportedAt: string
  readonly ops: number
  readonly origins: Readonly<Record<string, OriginSummary>>
  /** Derived keys in the store (not exported: rebuilt on import). */
  readonly derived: Readonly<Record<string, number>>
  /** Keys of no family this version knows (not exported). */
  readonly other: number
  /** The Lamport lease of the server (its `lamport` file), if it has one. */
  readonly lamportLease: number | null
}

// ---------------------------------------------------------------------------
// The tagged JSON codec.

const tags = ["$bytes", "$bigint", "$num", "$date", "$undefined"] as const

/** A value (as msgpackr decodes it) to JSON that says exactly what it was. */
export const toJsonValue = (v: unknown): unknown => {
  if (v === undefined) return { $undefined: true }
  if (v === null || typeof v === "boolean" || typeof v === "string") return v
  if (typeof v === "number") {
    if (Number.isNaN(v)) return { $num: "NaN" }
    if (!Number.isFinite(v)) return { $num: v > 0 ? "Infinity" : "-Infinity" }
    if (Object.is(v, -0)) return { $num: "-0" }
    return v
  }
  if (typeof v === "bigint") return { $bigint: v.toString() }
  if (v instanceof Uint8Array) return { $bytes: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") }
  if (v instanceof Date) return { $date: v.getTime() }
  if (Array.isArray(v)) return v.map(toJsonValue)
  if (typeof v === "object") {
    const out: Record<string, unknown> = {}
    for (const [k, x] of Object.entries(v)) Object.defineProperty(out, k.startsWith("$") ? `$${k}` : k, { value: toJsonValue(x), enumerable: true, writable: true, configurable: true })
    return out
  }
  throw new Error(`cannot export a value of type ${typeof v}`)
}

const base64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** The inverse of toJsonValue; throws on a malformed tag (hostile input). */
export const fromJsonValue = (v: unknown, depth = 0): unknown => {
  if (depth > 64) throw new Error("nested too deeply")
  if (v === null || typeof v !== "object") return v
  if (Array.isArray(v)) return v.map((x) => fromJsonValue(x, depth + 1))
  const keys = Object.keys(v)
  const o = v as Record<string, unknown>
  const tag = keys.length === 1 ? tags.find((t) => t === keys[0]) : undefined
  if (tag !== undefined) {
    const x = o[tag]
    switch (tag) {
      case "$bytes":
        if (typeof x !== "string" || !base64.test(x)) throw new Error("$bytes must be base64")
        return new Uint8Array(Buffer.from(x, "base64"))
      case "$bigint":
        if (typeof x !== "string" || !/^-?\d{1,400}$/.test(x)) throw new Error("$bigint must be a decimal string")
        return BigInt(x)
      case "$num":
        if (x === "NaN") return Number.NaN
        if (x === "Infinity") return Number.POSITIVE_INFINITY
        if (x === "-Infinity") return Number.NEGATIVE_INFINITY
        if (x === "-0") return -0
        throw new Error("$num must be NaN, Infinity, -Infinity or -0")
      case "$date":
        if (typeof x !== "number" || !Number.isFinite(x)) throw new Error("$date must be milliseconds")
        return new Date(x)
      case "$undefined":
        if (x !== true) throw new Error("$undefined must be true")
        return undefined
    }
  }
  const out: Record<string, unknown> = {}
  for (const k of keys) {
    if (k.startsWith("$") && !k.startsWith("$$")) throw new Error(`unknown tag '${k.slice(0, 40)}'`)
    Object.defineProperty(out, k.startsWith("$") ? k.slice(1) : k, { value: fromJsonValue(o[k], depth + 1), enumerable: true, writable: true, configurable: true })
  }
  return out
}

// ---------------------------------------------------------------------------
// Export.

/** The derived key families (what the Store writes beside each op). */
const derivedFamilies = ["h", "ix", "req"] as const

const readOwner = (dir: string) => {
  try {
    return readFileSync(join(dir, "OWNER"), "utf8").trim() || null
  } catch {
    return null
  }
}
const readLease = (dir: string) => {
  try {
    const n = Number(readFileSync(join(dir, "lamport"), "utf8").trim())
    return Number.isSafeInteger(n) && n >= 0 ? n : null
  } catch {
    return null
  }
}

/**
 * The snapshot of the store in `dir`, line by line (each without its newline):
 * the header, one line per op, the trailer. The LMDB environment is opened
 * read-only and read in one transaction, held until the last line is taken
 * (or the generator is closed). Never takes the data folder's LOCK.
 */
export async function* snapshotLines(dir: string, now: () => Date = () => new Date()): AsyncGenerator<string> {
  if (!existsSync(join(dir, "data.mdb"))) throw new Error(`${dir} holds no store (no data.mdb): not a server's data folder`)
  const db = open({ path: dir, compression: false, readOnly: true, noSubdir: false })
  const txn = db.useReadTransaction()
  try {
    const range = (start: Key, end: Key, extra: Record<string, unknown> = {}) =>
      db.getRange({ start: start as Array<KeyPart>, end: end as Array<KeyPart>, transaction: txn, ...extra } as Parameters<typeof db.getRange>[0])
    const count = (start: Key, end: Key) => db.getCount({ start: start as Array<KeyPart>, end: end as Array<KeyPart>, transaction: txn } as Parameters<typeof db.getCount>[0])
    // The origins: the first op key, then the first past that origin, and so on (a few seeks, not a scan).
    const origins: Record<string, OriginSummary> = {}
    let from: Key = ["op"]
    for (let i = 0; i < 100_000; i++) {
      let origin: string | undefined
      for (const key of db.getKeys({ start: from as Array<KeyPart>, end: ["op", keyHigh], limit: 1, transaction: txn } as Parameters<typeof db.getKeys>[0])) origin = (key as Array<KeyPart>)[1] as string
      if (origin === undefined) break
      let lastSeq = 0
      for (const key of db.getKeys({ start: ["op", origin, keyHigh], end: ["op", origin], reverse: true, limit: 1, transaction: txn } as Parameters<typeof db.getKeys>[0])) lastSeq = (key as Array<KeyPart>)[2] as number
      Object.defineProperty(origins, origin, { value: { ops: count(["op", origin], ["op", origin, keyHigh]), lastSeq }, enumerable: true })
      from = ["op", origin, keyHigh]
    }
    const ops = Object.values(origins).reduce((n, o) => n + o.ops, 0)
    const derived: Record<string, number> = {}
    for (const f of derivedFamilies) derived[f] = count([f], [f, keyHigh])
    const total = db.getCount({ transaction: txn } as Parameters<typeof db.getCount>[0])
    const version = db.get(["ix", "version"], { transaction: txn } as Parameters<typeof db.get>[1])
    const header: SnapshotHeader = {
      bulletin: "snapshot",
      format: snapshotFormat,
      server: readOwner(dir),
      schema: typeof version === "number" ? version : null,
      exportedAt: now().toISOString(),
      ops,
      origins,
      derived,
      other: total - ops - Object.values(derived).reduce((a, b) => a + b, 0),
      lamportLease: readLease(dir),
    }
    yield JSON.stringify(header)
    let written = 0
    for (const { value } of range(["op"], ["op", keyHigh])) {
      written += 1
      yield JSON.stringify({ op: toJsonValue(value) })
    }
    if (written !== ops) throw new Error(`read ${written} ops where the same transaction counted ${ops}`)
    yield JSON.stringify({ end: { ops } })
  } finally {
    txn.done()
    await db.close()
  }
}

// ---------------------------------------------------------------------------
// Import.

/** A line of a snapshot that is not what it must be: where, and what is wrong. */
export class SnapshotError extends Error {
  constructor(
    readonly line: number,
    readonly problem: string,
  ) {
    super(line === 0 ? problem : `line ${line}: ${problem}`)
  }
}

/** Longest line read (an op is at most a few KiB; a hostile file cannot make us buffer gigabytes). */
export const lineBytesMax = 1 << 20

/** The lines of a byte stream, numbered from 1, each at most `max` bytes. */
export async function* linesOf(chunks: AsyncIterable<Buffer | string>, max = lineBytesMax): AsyncGenerator<{ readonly n: number; readonly text: string }> {
  let pending: Array<Buffer> = []
  let pendingBytes = 0
  let n = 0
  for await (const c of chunks) {
    let chunk = typeof c === "string" ? Buffer.from(c) : c
    for (;;) {
      const nl = chunk.indexOf(10)
      if (nl < 0) break
      const piece = chunk.subarray(0, nl)
      if (pendingBytes + piece.length > max) throw new SnapshotError(n + 1, `longer than ${max} bytes`)
      n += 1
      yield { n, text: (pending.length === 0 ? piece : Buffer.concat([...pending, piece])).toString("utf8") }
      pending = []
      pendingBytes = 0
      chunk = chunk.subarray(nl + 1)
    }
    if (chunk.length > 0) {
      if (pendingBytes + chunk.length > max) throw new SnapshotError(n + 1, `longer than ${max} bytes`)
      pending.push(Buffer.from(chunk))
      pendingBytes += chunk.length
    }
  }
  if (pendingBytes > 0) yield { n: n + 1, text: Buffer.concat(pending).toString("utf8") }
}

const decodeOp = Schema.decodeUnknownResult(Op)

const parseLine = (n: number, text: string): Record<string, unknown> => {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (e) {
    throw new SnapshotError(n, `not JSON (${(e as Error).message.slice(0, 120)})`)
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new SnapshotError(n, "not a JSON object")
  return parsed as Record<string, unknown>
}

/** A header as read: checked field by field. */
export const checkHeader = (text: string): SnapshotHeader => {
  const h = parseLine(1, text)
  if (h.bulletin !== "snapshot") throw new SnapshotError(1, `not a bulletin snapshot header (expected {"bulletin":"snapshot",...}: the output of \`bulletin export\`)`)
  if (h.format !== snapshotFormat) throw new SnapshotError(1, `snapshot format ${JSON.stringify(h.format)?.slice(0, 20)}: this version reads format ${snapshotFormat}`)
  if (typeof h.ops !== "number" || !Number.isSafeInteger(h.ops) || h.ops < 0) throw new SnapshotError(1, "header: ops must be a count")
  if (h.origins === null || typeof h.origins !== "object" || Array.isArray(h.origins)) throw new SnapshotError(1, "header: origins must be an object")
  for (const [o, s] of Object.entries(h.origins as Record<string, unknown>)) {
    const ok = s !== null && typeof s === "object" && Number.isSafeInteger((s as OriginSummary).ops) && Number.isSafeInteger((s as OriginSummary).lastSeq)
    if (!ok) throw new SnapshotError(1, `header: origins.${o.slice(0, 40)} must be { ops, lastSeq }`)
  }
  if (h.server !== null && typeof h.server !== "string") throw new SnapshotError(1, "header: server must be a name or null")
  if (h.lamportLease !== undefined && h.lamportLease !== null && !(Number.isSafeInteger(h.lamportLease) && (h.lamportLease as number) >= 0)) throw new SnapshotError(1, "header: lamportLease must be a count or null")
  return h as unknown as SnapshotHeader
}

export interface ImportOptions {
  /** Write OWNER: the folder belongs to this server name. */
  readonly name?: string | undefined
  /** Write the export's Lamport lease (a restore of the same server). */
  readonly lease?: boolean
  /** Ops per write transaction. */
  readonly batch?: number
}

export interface ImportResult {
  readonly header: SnapshotHeader
  readonly ops: number
}

/** Is `dir` absent or an empty folder? (What an import may write into.) */
export const emptyOrAbsent = (dir: string): { ok: true } | { ok: false; why: string } => {
  if (!existsSync(dir)) return { ok: true }
  let entries: Array<string>
  try {
    entries = readdirSync(dir)
  } catch (e) {
    return { ok: false, why: `${dir} is not a folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` }
  }
  return entries.length === 0 ? { ok: true } : { ok: false, why: `${dir} is not empty (${entries.slice(0, 5).join(", ")}${entries.length > 5 ? ", ..." : ""}): import only into an empty or new folder` }
}

/**
 * Restores a snapshot into `dir`, which must be absent or empty. Every line
 * is checked (JSON, tags, the op schema every replicated op passes, no op
 * twice, the counts of the header and the trailer) while the ops are written,
 * through the Store, into a temporary folder beside `dir`; only a complete,
 * valid snapshot is renamed into place. On any error the temporary folder is
 * removed: nothing half-written is left behind.
 */
export const importSnapshot = async (lines: AsyncIterable<{ readonly n: number; readonly text: string }>, dir: string, options: ImportOptions = {}): Promise<ImportResult> => {
  const empty = emptyOrAbsent(dir)
  if (!empty.ok) throw new SnapshotError(0, empty.why)
  const parent = dirname(dir)
  mkdirSync(parent, { recursive: true })
  // No '.' in it: lmdb-js takes a path that looks like it has an extension for a file, not a folder.
  const tmp = join(parent, `import-of-${basename(dir).replace(/[^A-Za-z0-9_-]/g, "_")}-${process.pid}-${Date.now().toString(36)}`)
  mkdirSync(tmp)
  let kv: ReturnType<typeof openLmdb> | undefined
  const close = async () => {
    const k = kv
    kv = undefined
    if (k !== undefined) await k.close()
  }
  try {
    kv = openLmdb(tmp)
    const store = makeStore(kv)
    const batchSize = Math.max(1, options.batch ?? 1_000)
    let header: SnapshotHeader | undefined
    let ended: number | undefined
    const perOrigin = new Map<string, number>()
    let batch: Array<Op> = []
    let batchLines: Array<number> = []
    let total = 0
    const flush = async () => {
      if (batch.length === 0) return
      const outcomes = await Effect.runPromise(store.applyAll(batch))
      const dup = outcomes.indexOf("duplicate")
      if (dup >= 0) throw new SnapshotError(batchLines[dup]!, `op ${batch[dup]!.origin}/${batch[dup]!.seq} appears twice`)
      batch = []
      batchLines = []
    }
    for await (const { n, text } of lines) {
      if (header === undefined) {
        header = checkHeader(text)
        continue
      }
      if (text.trim() === "") throw new SnapshotError(n, "empty line")
      if (ended !== undefined) throw new SnapshotError(n, "a line after the end line")
      const record = parseLine(n, text)
      const keys = Object.keys(record)
      if (keys.length === 1 && keys[0] === "end") {
        const e = record.end as { ops?: unknown } | null
        if (e === null || typeof e !== "object" || e.ops !== header.ops) throw new SnapshotError(n, `the end line must be {"end":{"ops":${header.ops}}}`)
        ended = n
        continue
      }
      if (keys.length !== 1 || keys[0] !== "op") throw new SnapshotError(n, `expected {"op":{...}} or the end line, got keys ${keys.slice(0, 5).map((k) => JSON.stringify(k.slice(0, 40))).join(", ")}`)
      let value: unknown
      try {
        value = fromJsonValue(record.op)
      } catch (e) {
        throw new SnapshotError(n, (e as Error).message)
      }
      const decoded = decodeOp(value)
      if (decoded._tag !== "Success") throw new SnapshotError(n, `not a valid op: ${plainIssue(decoded.failure)}`)
      const op = decoded.success
      perOrigin.set(op.origin, (perOrigin.get(op.origin) ?? 0) + 1)
      total += 1
      if (total > header.ops) throw new SnapshotError(n, `more ops than the header's ${header.ops}`)
      batch.push(op)
      batchLines.push(n)
      if (batch.length >= batchSize) await flush()
    }
    if (header === undefined) throw new SnapshotError(0, "empty input: no snapshot header")
    await flush()
    if (ended === undefined) throw new SnapshotError(0, `no end line after ${total} of ${header.ops} ops: the snapshot is cut short`)
    if (total !== header.ops) throw new SnapshotError(0, `${total} ops where the header says ${header.ops}`)
    for (const [origin, s] of Object.entries(header.origins)) {
      if ((perOrigin.get(origin) ?? 0) !== s.ops) throw new SnapshotError(0, `origin ${origin}: ${perOrigin.get(origin) ?? 0} ops where the header says ${s.ops}`)
    }
    for (const origin of perOrigin.keys()) if (!Object.hasOwn(header.origins, origin)) throw new SnapshotError(0, `ops of origin ${origin}, which the header does not list`)
    const opCount = store.opCount()
    await close()
    if (options.name !== undefined) writeFileSync(join(tmp, "OWNER"), `${options.name}\n`)
    if (options.lease === true && header.lamportLease !== null && header.lamportLease !== undefined) writeFileSync(join(tmp, "lamport"), String(header.lamportLease))
    syncFolder(tmp)
    // Into place: an empty target folder is replaced (rename(2) does that on POSIX); a folder that appeared meanwhile with files in it is not.
    const again = emptyOrAbsent(dir)
    if (!again.ok) throw new SnapshotError(0, again.why)
    renameSync(tmp, dir)
    syncFolder(parent)
    return { header, ops: opCount }
  } catch (e) {
    await close().catch(() => {})
    rmSync(tmp, { recursive: true, force: true })
    throw e
  }
}

const syncFolder = (dir: string) => {
  try {
    const fd = openSync(dir, "r")
    try {
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
  } catch {
    // some file systems do not sync folders: the rename is still atomic
  }
}
