import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import fc from "fast-check"
import { afterAll, describe, expect, it } from "vitest"
import type { Op } from "../../src/protocol/ops.ts"
import { openLmdb } from "../../src/store/OrderedKv.ts"
import { makeStore } from "../../src/store/Store.ts"
import { SnapshotError, fromJsonValue, importSnapshot, linesOf, snapshotLines, toJsonValue } from "../../src/store/snapshot.ts"

const root = mkdtempSync(join(tmpdir(), "bulletin-snapshot-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))
let folders = 0
const fresh = (what: string) => join(root, `${what}-${(folders += 1)}`)

const base = { timestamp: 1_764_650_000_000 }
const ops: Array<Op> = [
  { kind: "user", user: "ana", origin: "server-1", seq: 1, clock: 1, ...base },
  { kind: "user", user: "bob", origin: "server-2", seq: 1, clock: 2, ...base },
  { kind: "channel", channel: "general", origin: "server-1", seq: 2, clock: 3, ...base },
  { kind: "publish", user: "ana", channel: "general", message: "hello\nwith a newline and \"quotes\" and ünïcödé", prev: 0, origin: "server-1", seq: 3, clock: 4, ...base, id: "s-1" },
  // A retry applied on two servers: the same request id twice; only the first in (clock, origin, seq) shows.
  { kind: "publish", user: "ana", channel: "general", message: "retried", prev: 0, origin: "server-2", seq: 2, clock: 5, ...base, id: "s-2" },
  { kind: "publish", user: "ana", channel: "general", message: "retried", prev: 3, origin: "server-1", seq: 4, clock: 6, ...base, id: "s-2" },
  { kind: "message", src: "bob", dst: "ana", message: "psst", origin: "server-2", seq: 3, clock: 7, ...base, id: "s-3" },
  { kind: "account", user: "bob", salt: "00112233445566778899aabbccddeeff", hash: "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100", origin: "server-2", seq: 4, clock: 8, ...base },
  // Past a gap in server-3's sequence (seq 1 never arrived): kept, and the vector stops before it.
  { kind: "publish", user: "bob", channel: "general", message: "after a gap", prev: 0, origin: "server-3", seq: 2, clock: 9, ...base },
]

const storeWith = async (dir: string, content: ReadonlyArray<Op>) => {
  const kv = openLmdb(dir)
  const store = makeStore(kv)
  await Effect.runPromise(store.applyAll(content))
  await kv.close()
}

/** What a server answers from a store: every read the Store offers. */
const answers = async (dir: string) => {
  const kv = openLmdb(dir)
  try {
    const s = makeStore(kv)
    const page = (q: Parameters<typeof s.history>[0]) => Effect.runSync(Effect.orDie(s.history(q)))
    return {
      general: page({ channel: "general", limit: 500 }),
      privately: page({ user: "ana", peer: "bob", limit: 500 }),
      users: s.users(),
      channels: s.channels(),
      vector: [...s.vector()].sort(),
      lastSeqs: ["server-1", "server-2", "server-3"].map(s.lastSeq),
      maxClock: s.maxClock(),
      opCount: s.opCount(),
      account: s.account("bob"),
      requests: ["s-1", "s-2", "s-3"].map((id) => s.opForRequest(id)),
      lastPost: s.lastPost("server-1", "general"),
    }
  } finally {
    await kv.close()
  }
}

const collect = async (dir: string) => {
  const out: Array<string> = []
  for await (const l of snapshotLines(dir)) out.push(l)
  return out
}

const numbered = async function* (lines: ReadonlyArray<string>) {
  let n = 0
  for (const text of lines) yield { n: (n += 1), text }
}

describe("the tagged JSON of snapshot values", () => {
  it("round-trips what JSON cannot say: bytes, bigints, NaN, -0, dates, undefined, $-keys, __proto__", () => {
    const odd = JSON.parse('{"__proto__": {"x": 1}}') as unknown
    const value = {
      bytes: new Uint8Array([0, 1, 2, 254, 255]),
      empty: new Uint8Array(0),
      big: 2n ** 70n,
      nan: Number.NaN,
      inf: [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY],
      negZero: -0,
      when: new Date(1_764_650_000_000),
      holes: [undefined, null, 1],
      $bytes: "not a tag: a key that looks like one",
      $$double: 2,
      odd,
    }
    const back = fromJsonValue(JSON.parse(JSON.stringify(toJsonValue(value)))) as typeof value
    expect(back).toEqual(value)
    expect(Object.is(back.negZero, -0)).toBe(true)
    expect(back.bytes).toBeInstanceOf(Uint8Array)
    expect(Object.getPrototypeOf(back.odd)).toBe(Object.prototype)
    expect(Object.keys(back.odd as object)).toEqual(["__proto__"])
  })

  it("round-trips any value made of JSON, bytes and bigints exactly", () => {
    const leaf = fc.oneof(fc.string(), fc.double(), fc.integer(), fc.boolean(), fc.constant(null), fc.uint8Array({ maxLength: 40 }), fc.bigInt())
    const value = fc.letrec((tie) => ({ v: fc.oneof({ depthSize: "small" }, leaf, fc.array(tie("v"), { maxLength: 5 }), fc.dictionary(fc.string(), tie("v"), { maxKeys: 5 })) })).v
    fc.assert(
      fc.property(value, (v) => {
        expect(fromJsonValue(JSON.parse(JSON.stringify(toJsonValue(v))))).toEqual(v)
      }),
      { numRuns: 300 },
    )
  })

  it("refuses malformed tags", () => {
    for (const bad of [{ $bytes: "!!!" }, { $bytes: 3 }, { $bigint: "1e3" }, { $num: "zero" }, { $date: "today" }, { $undefined: 1 }, { $nosuch: 1 }, { a: { $bytes: "***" } }]) {
      expect(() => fromJsonValue(bad), JSON.stringify(bad)).toThrow()
    }
    let deep: unknown = 1
    for (let i = 0; i < 100; i++) deep = [deep]
    expect(() => fromJsonValue(deep)).toThrow(/nested too deeply/)
  })
})

describe("export and import", () => {
  it("a store exported and imported answers every read the same, and exports the same lines again", async () => {
    const source = fresh("source")
    await storeWith(source, ops)
    writeFileSync(join(source, "OWNER"), "server-1\n")
    writeFileSync(join(source, "lamport"), "1234")
    const lines = await collect(source)
    const header = JSON.parse(lines[0]!)
    expect(header).toMatchObject({ bulletin: "snapshot", format: 1, server: "server-1", schema: 1, ops: ops.length, lamportLease: 1234, other: 0 })
    expect(header.origins).toEqual({ "server-1": { ops: 4, lastSeq: 4 }, "server-2": { ops: 4, lastSeq: 4 }, "server-3": { ops: 1, lastSeq: 2 } })
    expect(lines.at(-1)).toBe(JSON.stringify({ end: { ops: ops.length } }))
    expect(lines.length).toBe(ops.length + 2)

    const target = fresh("target")
    const r = await importSnapshot(numbered(lines), target, { name: "server-9" })
    expect(r.ops).toBe(ops.length)
    expect(readdirSync(target).sort()).toEqual(["OWNER", "data.mdb", "lock.mdb"])
    const [a, b] = [await answers(source), await answers(target)]
    expect(b).toEqual(a)
    expect(a.general.posts.map((p) => p.message)).toEqual(["hello\nwith a newline and \"quotes\" and ünïcödé", "retried", "after a gap"])
    expect(a.vector).toEqual([["server-1", 4], ["server-2", 4]])
    // The same ops again (the header differs only in its time and owner).
    expect((await collect(target)).slice(1)).toEqual(lines.slice(1))
  })

  it("reads one transaction: ops written while an export runs are not in it", async () => {
    const dir = fresh("live")
    await storeWith(dir, ops)
    const it = snapshotLines(dir)
    const header = JSON.parse((await it.next()).value as string)
    // Another process commits more ops (as the running server does) before the export reads them.
    const more: Array<Op> = Array.from({ length: 50 }, (_, i) => ({ kind: "publish", user: "ana", channel: "general", message: `late ${i}`, origin: "server-1", seq: 5 + i, clock: 100 + i, ...base }))
    const writer = `import { open } from "lmdb"; const db = open({ path: process.argv[1], compression: false }); for (const op of JSON.parse(process.argv[2])) db.put(["op", op.origin, op.seq], op); await db.flushed; await db.close()`
    execFileSync(process.execPath, ["--input-type=module", "-e", writer, dir, JSON.stringify(more)], { cwd: join(import.meta.dirname, "../.."), stdio: "inherit" })
    const rest: Array<string> = []
    for (let r = await it.next(); !r.done; r = await it.next()) rest.push(r.value)
    expect(header.ops).toBe(ops.length)
    expect(rest.length).toBe(ops.length + 1)
    expect(rest.some((l) => l.includes("late "))).toBe(false)
    expect((await collect(dir)).length).toBe(ops.length + 50 + 2)
  })

  it("refuses hostile or broken input with the line, and leaves nothing behind", async () => {
    const source = fresh("source")
    await storeWith(source, ops)
    const good = await collect(source)
    const replace = (n: number, text: string) => good.map((l, i) => (i === n - 1 ? text : l))
    const op3 = JSON.parse(good[2]!) as { op: Record<string, unknown> }
    const cases: Array<[string, ReadonlyArray<string>, RegExp]> = [
      ["not JSON", replace(3, good[2]!.slice(0, 30)), /^line 3: not JSON/],
      ["an array", replace(3, "[1,2]"), /^line 3: not a JSON object/],
      ["another record", replace(3, '{"key":["h"],"value":1}'), /^line 3: expected \{"op"/],
      ["a bad seq", replace(3, JSON.stringify({ op: { ...op3.op, seq: "x" } })), /^line 3: not a valid op: .*seq/],
      ["a control character in a name", replace(3, JSON.stringify({ op: { ...op3.op, origin: "ser\u001bver" } })), /^line 3: not a valid op/],
      ["bytes where text goes", replace(3, JSON.stringify({ op: { ...op3.op, channel: { $bytes: "AAE=" } } })), /^line 3: not a valid op/],
      ["a malformed tag", replace(3, JSON.stringify({ op: { ...op3.op, channel: { $bytes: "***" } } })), /^line 3: \$bytes must be base64/],
      ["an op twice", replace(4, good[2]!), /^line 4: op server-1\/2 appears twice/],
      ["a blank line", replace(4, ""), /^line 4: empty line/],
      ["no header", good.slice(1), /^line 1: not a bulletin snapshot header/],
      ["another format", replace(1, good[0]!.replace('"format":1', '"format":99')), /^line 1: snapshot format 99/],
      ["cut short", good.slice(0, 5), /no end line after 4 of 9 ops: the snapshot is cut short/],
      ["an end line that lies", replace(good.length, '{"end":{"ops":3}}'), /the end line must be/],
      ["more after the end", [...good, good[2]!], /a line after the end line/],
      ["fewer ops than counted", [...good.slice(0, 3), ...good.slice(4)], /ops where the header says/],
      ["empty", [], /empty input/],
    ]
    for (const [what, lines, error] of cases) {
      const target = fresh("hostile")
      const e = await importSnapshot(numbered(lines), target).then(
        () => undefined,
        (x: unknown) => x,
      )
      expect(e, what).toBeInstanceOf(SnapshotError)
      expect((e as Error).message, what).toMatch(error)
      expect(existsSync(target), `${what}: nothing at the target`).toBe(false)
    }
    expect(readdirSync(root).filter((f) => f.startsWith("import-of-")), "no temporary folder left").toEqual([])
  })

  it("refuses a folder that is not empty, and writes into an empty one", async () => {
    const source = fresh("source")
    await storeWith(source, ops)
    const lines = await collect(source)
    const used = fresh("used")
    mkdirSync(used)
    writeFileSync(join(used, "OWNER"), "server-5\n")
    await expect(importSnapshot(numbered(lines), used)).rejects.toThrow(/is not empty \(OWNER\)/)
    expect(readdirSync(used)).toEqual(["OWNER"])
    const empty = fresh("empty")
    mkdirSync(empty)
    await importSnapshot(numbered(lines), empty)
    expect(readdirSync(empty).sort()).toEqual(["data.mdb", "lock.mdb"])
  })

  it("splits lines of any chunking, and refuses a line longer than the bound", async () => {
    const chunks = async function* (parts: ReadonlyArray<string>) {
      for (const p of parts) yield Buffer.from(p)
    }
    const got: Array<[number, string]> = []
    for await (const l of linesOf(chunks(["ab", "c\nd", "é\n", "\n", "last"]))) got.push([l.n, l.text])
    expect(got).toEqual([[1, "abc"], [2, "dé"], [3, ""], [4, "last"]])
    const long = async () => {
      for await (const _ of linesOf(chunks(["x".repeat(600), "y".repeat(600), "\n"]), 1_000)) void _
    }
    await expect(long()).rejects.toThrow(/^line 1: longer than 1000 bytes/)
  })

  it("says clearly that a folder holds no store", async () => {
    const nothing = fresh("nothing")
    mkdirSync(nothing)
    await expect(collect(nothing)).rejects.toThrow(/holds no store \(no data.mdb\)/)
  })
})
