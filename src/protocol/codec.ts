import { Packr } from "msgpackr"

/**
 * MessagePack as every standard peer reads it: plain maps (no msgpackr record
 * extension, which Python's msgpack cannot read), 64-bit integers as numbers.
 */
const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  mapsAsObjects: true,
  int64AsType: "number",
  encodeUndefinedAsNil: false,
})

/**
 * msgpackr writes integers beyond 32 bits (epoch milliseconds, for one) as
 * float64; other peers would read `timestamp` as a float. As BigInt they go
 * out as MessagePack int64.
 */
const toWire = (v: unknown): unknown => {
  if (typeof v === "number") return Number.isSafeInteger(v) && (v > 0xffffffff || v < -0x80000000) ? BigInt(v) : v
  if (Array.isArray(v)) return v.map(toWire)
  if (v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    const out: Record<string, unknown> = {}
    // defineProperty: an own key named "__proto__" (a decoded map may have one) stays a key, not a prototype.
    for (const [k, x] of Object.entries(v)) Object.defineProperty(out, k, { value: toWire(x), enumerable: true, writable: true, configurable: true })
    return out
  }
  return v
}

export const encode = (value: unknown): Uint8Array => packr.pack(toWire(value))

export type DecodeResult = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: string }

export const decode = (bytes: Uint8Array): DecodeResult => {
  try {
    // unpackMultiple would accept concatenated values; a frame holds exactly one.
    const value: unknown = packr.unpack(bytes)
    return { ok: true, value }
  } catch (cause) {
    return { ok: false, error: `malformed MessagePack: ${(cause as Error).message ?? String(cause)}` }
  }
}

export const textOf = (frame: Uint8Array): string => Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString("utf8")
