import fc from "fast-check"
import { pack } from "msgpackr"
import { describe, expect, it } from "vitest"
import { decode, encode } from "../../src/protocol/codec.ts"
import { Limits } from "../../src/protocol/limits.ts"
import { decodeEnvelope, decodePublication, decodeRequest, errorReply, publicationOf, timestampToMs } from "../../src/protocol/messages.ts"
import { validName } from "./names.test.ts"

const text = fc.string({ minLength: 1, maxLength: 200, unit: "grapheme" }).filter((s) => !/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(s))
const clock = fc.nat({ max: 1e9 })
const ts = fc.integer({ min: 1_600_000_000_000, max: 2_000_000_000_000 })

const request = fc.oneof(
  fc.record({ service: fc.constant("login" as const), user: validName }),
  fc.record({ service: fc.constant("users" as const) }),
  fc.record({ service: fc.constant("channel" as const), channel: validName }),
  fc.record({ service: fc.constant("channels" as const) }),
  fc.record({ service: fc.constant("publish" as const), user: validName, channel: validName, message: text }),
  fc.record({ service: fc.constant("message" as const), src: validName, dst: validName, message: text }),
  fc.record({ service: fc.constant("history" as const), channel: validName, limit: fc.integer({ min: 1, max: Limits.historyLimitMax }) }),
  fc.record({ service: fc.constant("history" as const), user: validName, peer: validName, before: fc.tuple(clock, validName, fc.integer({ min: 1, max: 1e6 })) }),
)

describe("client requests", () => {
  it("round-trip through MessagePack and the schema, with clock and timestamp", () => {
    fc.assert(
      fc.property(request, clock, ts, (req, c, t) => {
        const { service, ...fields } = req
        const d = decodeRequest(encode({ service, data: { ...fields, timestamp: t, clock: c } }))
        expect(d.ok).toBe(true)
        if (!d.ok) return
        expect(d.value).toEqual(req)
        expect(d.meta.clock).toBe(c)
        expect(d.meta.timestampMs).toBe(t)
      }),
    )
  })

  it("accept the real peers' quirks: opcao, top-level clock, float seconds, ISO strings", () => {
    const d = decodeRequest(encode({ opcao: "login", clock: 7, data: { user: "ana", timestamp: 1_700_000_000.25 } }))
    expect(d.ok && d.value).toEqual({ service: "login", user: "ana" })
    expect(d.meta?.clock).toBe(7)
    expect(d.meta?.timestampMs).toBe(1_700_000_000_250)
    const iso = decodeRequest(encode({ service: "users", data: { timestamp: "2026-11-24T10:00:00Z" } }))
    expect(iso.meta?.timestampMs).toBe(Date.parse("2026-11-24T10:00:00Z"))
    // data.clock wins over the top-level one when both are there
    expect(decodeRequest(encode({ service: "users", clock: 3, data: { clock: 9 } })).meta?.clock).toBe(9)
    // a MessagePack timestamp extension decodes as a Date
    expect(timestampToMs(new Date(5000))).toBe(5000)
    // python's msgpack default (no extension) also works for plain requests
    expect(decodeRequest(pack({ service: "channels", data: {} })).ok).toBe(true)
  })

  it("never throw on arbitrary bytes, and always explain", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const d = decodeRequest(bytes)
        if (!d.ok) expect(d.description.length).toBeGreaterThan(0)
      }),
      { numRuns: 2000 },
    )
  })

  it("never throw on arbitrary MessagePack values", () => {
    fc.assert(
      fc.property(fc.anything({ maxDepth: 3 }), fc.anything({ maxDepth: 3 }), (a, b) => {
        for (const v of [a, { service: a, data: b }, { service: "publish", data: b }]) {
          let bytes: Uint8Array
          try { bytes = encode(v) } catch { return }
          const d = decodeRequest(bytes)
          if (!d.ok) expect(typeof d.description).toBe("string")
        }
      }),
      { numRuns: 1000 },
    )
  })

  it.each([
    [{ service: "nope" }, "unknown service 'nope'"],
    [{ data: {} }, "missing field 'service'"],
    [[1, 2, 3], "expected a map"],
    ["just a string", "expected a map"],
    [{ service: "login", data: [] }, "'data' must be a map"],
    [{ service: "login", data: {} }, "invalid login request: user is missing"],
    [{ service: "login", data: { user: 42 } }, "invalid login request: user must be a string"],
    [{ service: "history", data: { channel: "c", limit: "ten" } }, "invalid history request: limit must be a number"],
    [{ service: "login", data: { user: "a b" } }, "name may hold only"],
    [{ service: "publish", data: { user: "a", channel: "c", message: "" } }, "must not be empty"],
    [{ service: "publish", data: { user: "a", channel: "c", message: "x", clock: "soon" } }, "'clock' must be an integer"],
    [{ service: "publish", data: { user: "a", channel: "c", message: "x", clock: -1 } }, "'clock' must be an integer"],
    [{ service: "publish", data: { user: "a", channel: "c", message: "x", clock: 2 ** 60 } }, "'clock' must be an integer"],
    [{ service: "users", data: { timestamp: "yesterday" } }, "'timestamp'"],
    [{ service: "users", data: { id: "x".repeat(Limits.requestIdCharsMax + 1) } }, "'id'"],
    [{ service: "history", data: {} }, "either 'channel'"],
    [{ service: "history", data: { channel: "c", user: "a", peer: "b" } }, "either 'channel'"],
    [{ service: "history", data: { channel: "c", limit: Limits.historyLimitMax + 1 } }, "invalid history request"],
    [{ service: "history", data: { channel: "c", before: 1, after: 2 } }, "not both"],
  ])("reject %j with a clear error", (value, why) => {
    const d = decodeRequest(encode(value))
    expect(d.ok).toBe(false)
    if (!d.ok) expect(d.description).toContain(why)
    // Plain words for a person: no schema path syntax.
    if (!d.ok) expect(d.description).not.toMatch(/at \[/)
  })

  it("reject frames over the size limit before decoding them", () => {
    const big = encode({ service: "publish", data: { user: "a", channel: "c", message: "x".repeat(Limits.frameBytesMax) } })
    const d = decodeRequest(big)
    expect(!d.ok && d.description).toContain("frame too large")
  })

  it("take frames between cluster members up to clusterFrameBytesMax, and not one byte more", () => {
    const frame = (bytes: number) => {
      const base = encode({ service: "replicate", data: { ops: [], more: false, pad: "" }, clock: 1, timestamp: 0 }).byteLength
      return encode({ service: "replicate", data: { ops: [], more: false, pad: "x".repeat(bytes - base - 4) }, clock: 1, timestamp: 0 })
    }
    const at = frame(Limits.clusterFrameBytesMax)
    expect(at.byteLength).toBe(Limits.clusterFrameBytesMax)
    expect(decodeEnvelope(at, Limits.clusterFrameBytesMax).ok).toBe(true)
    expect(decodeEnvelope(at).ok).toBe(false) // a client's limit
    const over = decodeEnvelope(frame(Limits.clusterFrameBytesMax + 1), Limits.clusterFrameBytesMax)
    expect(!over.ok && over.description).toContain("frame too large")
  })

  it("are not fooled by prototype keys", () => {
    const d = decodeRequest(encode(JSON.parse('{"__proto__": {"service": "users"}, "data": {}}')))
    expect(d.ok).toBe(false)
  })
})

describe("replies and publications", () => {
  it("error replies carry the text in description and message, and the clock twice", () => {
    const r = decode(errorReply("publish", "no such channel", { clock: 5, timestampMs: 1000 }))
    expect(r.ok && r.value).toEqual({ service: "publish", clock: 5, data: { status: "erro", description: "no such channel", message: "no such channel", timestamp: 1000, clock: 5 } })
  })

  it("publications round-trip, on topic = channel or recipient", () => {
    fc.assert(
      fc.property(validName, validName, text, clock, (a, b, m, c) => {
        const post = { service: "publish" as const, user: a, channel: b, message: m, timestamp: 1, clock: c, origin: "s1", seq: 1 }
        const { topic, payload } = publicationOf(post)
        expect(topic).toBe(b)
        const d = decodePublication(payload)
        expect(d.ok && d.value).toMatchObject({ service: "publish", user: a, channel: b, message: m })
        const dm = publicationOf({ service: "message", src: a, dst: b, message: m, timestamp: 1, clock: c, origin: "s1", seq: 2 })
        expect(dm.topic).toBe(b)
      }),
    )
  })
})

describe("codec", () => {
  it("writes integer epoch milliseconds as MessagePack integers, not floats", () => {
    // The byte after key "t" (0xa1 0x74) is the value's type: 0xcf uint64, 0xd3 int64, 0xcb float64.
    const typeOf = (v: number) => { const b = [...encode({ t: v })]; return b[b.indexOf(0x74) + 1] }
    expect([0xcf, 0xd3]).toContain(typeOf(1_795_524_525_912))
    expect([0xcf, 0xd3]).toContain(typeOf(-5_000_000_000))
    expect(typeOf(1.5)).toBe(0xcb)
    const bytes = encode({ t: 1_795_524_525_912, small: 5, neg: -5_000_000_000, f: 1.5 })
    const back = decode(bytes)
    expect(back.ok && back.value).toEqual({ t: 1_795_524_525_912, small: 5, neg: -5_000_000_000, f: 1.5 })
  })
})
