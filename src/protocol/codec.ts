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

export const encode = (value: unknown): Uint8Array => packr.pack(value)

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
