import { Schema } from "effect"
import { decode, encode } from "./codec.ts"
import { Limits } from "./limits.ts"
import { nameProblem, textProblem } from "./names.ts"

// ---------------------------------------------------------------------------
// Field schemas. Everything that crosses a socket is decoded here, once.

const filtered = (problem: (s: string) => string | undefined, what: string) =>
  Schema.String.check(
    Schema.makeFilter((s: string) => {
      const p = problem(s)
      return p === undefined ? true : `${what} ${p}`
    }),
  )

export const Name = filtered(nameProblem, "name")
export const Text = filtered(textProblem, "message")

/** A position in the total history order (Lamport clock, origin server, origin sequence). */
export const Cursor = Schema.Union([
  Schema.Tuple([Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0)), Schema.String.check(Schema.isMaxLength(64)), Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))]),
  Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0)),
])
export type Cursor = typeof Cursor.Type

const Password = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(256))
const Token = Schema.String.check(Schema.isMaxLength(200))
const HistoryLimit = Schema.Number.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: Limits.historyLimitMax }))
const ListLimit = Schema.Number.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: Limits.listLimitMax }))
/** Our extension: a page of the list, names after `after` (exclusive), at most `limit`; the reply says `more`. */
const ListPage = Schema.Struct({ limit: Schema.optionalKey(ListLimit), after: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(Limits.nameCodePointsMax * 4))) })

/** The `data` of each client service, without the envelope fields. */
export const RequestData = {
  /** `password` (ours): claims the name on a first login, is required on later ones (see accounts). */
  login: Schema.Struct({ user: Name, password: Schema.optionalKey(Password) }),
  users: ListPage,
  channel: Schema.Struct({ channel: Name }),
  channels: ListPage,
  /** `token` (ours): the login's, required to post or send as a claimed name. */
  publish: Schema.Struct({ user: Name, channel: Name, message: Text, token: Schema.optionalKey(Token) }),
  message: Schema.Struct({ src: Name, dst: Name, message: Text, token: Schema.optionalKey(Token) }),
  /**
   * Our extension. Either `channel`, or `user` + `peer` for the private
   * conversation between two users. `before` / `after` are exclusive cursors.
   */
  history: Schema.Struct({
    channel: Schema.optionalKey(Name),
    user: Schema.optionalKey(Name),
    peer: Schema.optionalKey(Name),
    before: Schema.optionalKey(Cursor),
    after: Schema.optionalKey(Cursor),
    limit: Schema.optionalKey(HistoryLimit),
    /** Ours: the login's token, required to read a claimed user's private conversations. */
    token: Schema.optionalKey(Token),
    /**
     * Read-your-writes (ours): per origin server, the highest seq of this
     * client's own writes (from its replies' cursors). A server that has not
     * received them yet pulls and waits a little before answering.
     */
    seen: Schema.optionalKey(Schema.Record(Name, Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))).check(Schema.isMaxProperties(Limits.originsMax))),
  }),
} as const

export type Service = keyof typeof RequestData
export const services = Object.keys(RequestData) as ReadonlyArray<Service>
export const isService = (s: string): s is Service => Object.hasOwn(RequestData, s)

export type RequestOf<S extends Service> = { readonly service: S } & (typeof RequestData)[S]["Type"]
export type ClientRequest = { [S in Service]: RequestOf<S> }[Service]

/** Envelope fields every message may carry, normalised. */
export interface Meta {
  /** Sender's Lamport clock, from `data.clock` or the top-level `clock`. */
  readonly clock: number | undefined
  /** Sender's physical time in epoch milliseconds, whatever unit it was sent in. */
  readonly timestampMs: number | undefined
  /** Client request id (our extension): a retried request is applied once. */
  readonly id: string | undefined
}

export type Decoded<T> =
  | { readonly ok: true; readonly value: T; readonly meta: Meta }
  | { readonly ok: false; readonly service: string | undefined; readonly description: string; readonly meta: Meta | undefined }

const isRecord = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u) && !(u instanceof Uint8Array) && !(u instanceof Date)

/**
 * Timestamps arrive as integer ms, float seconds (Python's time.time()),
 * RFC 3339 strings, or MessagePack timestamps (decoded as Date). Numbers below
 * 1e11 cannot be epoch ms after 1973, so they are taken as seconds.
 */
export const timestampToMs = (t: unknown): number | undefined | "invalid" => {
  if (t === undefined || t === null) return undefined
  if (t instanceof Date) return Number.isFinite(t.getTime()) ? t.getTime() : "invalid"
  if (typeof t === "number") {
    if (!Number.isFinite(t) || t < 0) return "invalid"
    return Math.round(t < 1e11 ? t * 1000 : t)
  }
  if (typeof t === "string" && t.length <= 64) {
    const ms = Date.parse(t)
    return Number.isFinite(ms) ? ms : "invalid"
  }
  return "invalid"
}

const clockOf = (u: unknown): number | undefined | "invalid" => {
  if (u === undefined || u === null) return undefined
  if (typeof u !== "number" || !Number.isFinite(u) || u < 0 || u > Limits.clockMax) return "invalid"
  return Math.floor(u)
}

const oneLine = (e: unknown) => String(e).replace(/^SchemaError\(|\)$/g, "").replace(/\s*\n\s*/g, " ")

/**
 * A schema failure in plain words, for a person reading the reply: the
 * field first, no schema path syntax (`Expected string at ["user"]` is
 * "user must be a string").
 */
export const plainIssue = (e: unknown): string => {
  const text = oneLine(e)
  const at = /^(.*?) at \[(.+)\]$/.exec(text)
  if (at === null) return text
  let field: string
  try {
    field = (JSON.parse(`[${at[2]}]`) as Array<string | number>).join(".")
  } catch {
    return text
  }
  const what = at[1]!
  if (what === "Missing key") return `${field} is missing`
  const expected = /^Expected (\w+)$/.exec(what)
  if (expected !== null) return `${field} must be ${/^[aeiou]/.test(expected[1]!) ? "an" : "a"} ${expected[1]}`
  return `${field}: ${what}`
}

type Envelope = { service: string; data: Record<string, unknown>; meta: Meta }

/** Frame bytes to the envelope: size, MessagePack, map shape, service, clock, timestamp, id. */
export const decodeEnvelope = (
  frame: Uint8Array,
  /** `Limits.clusterFrameBytesMax` for the frames between cluster members that may be larger. */
  bytesMax: number = Limits.frameBytesMax,
): { ok: true; envelope: Envelope } | { ok: false; service: string | undefined; description: string; meta: Meta | undefined } => {
  if (frame.byteLength > bytesMax) {
    return { ok: false, service: undefined, meta: undefined, description: `frame too large: ${frame.byteLength} bytes, the limit is ${bytesMax}` }
  }
  const raw = decode(frame)
  if (!raw.ok) return { ok: false, service: undefined, meta: undefined, description: raw.error }
  const top = raw.value
  if (!isRecord(top)) return { ok: false, service: undefined, meta: undefined, description: "expected a map { service, data }" }
  const service = Object.hasOwn(top, "service") ? top.service : Object.hasOwn(top, "opcao") ? top.opcao : undefined
  const serviceText = typeof service === "string" ? service.slice(0, Limits.serviceCharsMax) : undefined
  const data = Object.hasOwn(top, "data") ? top.data : {}
  const fail = (description: string, meta?: Meta) => ({ ok: false as const, service: serviceText, description, meta })
  if (typeof service !== "string" || service.length === 0) return fail("missing field 'service' (or 'opcao')")
  if (!isRecord(data)) return fail("field 'data' must be a map")
  const clock = clockOf(Object.hasOwn(data, "clock") ? data.clock : top.clock)
  if (clock === "invalid") return fail(`field 'clock' must be an integer between 0 and ${Limits.clockMax}`)
  const timestampMs = timestampToMs(data.timestamp)
  if (timestampMs === "invalid") return fail("field 'timestamp' must be epoch seconds, epoch milliseconds or an RFC 3339 string")
  const id = data.id
  if (id !== undefined && (typeof id !== "string" || id.length === 0 || id.length > Limits.requestIdCharsMax)) {
    return fail(`field 'id' must be a string of 1 to ${Limits.requestIdCharsMax} characters`)
  }
  const meta: Meta = { clock, timestampMs, id: id as string | undefined }
  return { ok: true, envelope: { service, data, meta } }
}

/** Decode a client request: envelope, then the service's own fields. */
export const decodeRequest = (frame: Uint8Array): Decoded<ClientRequest> => {
  const env = decodeEnvelope(frame)
  if (!env.ok) return env
  const { service, data, meta } = env.envelope
  if (!isService(service)) {
    return { ok: false, service: service.slice(0, Limits.serviceCharsMax), meta, description: `unknown service '${service.slice(0, Limits.serviceCharsMax)}'; known: ${services.join(", ")}` }
  }
  const fields = Schema.decodeUnknownResult(RequestData[service] as Schema.Codec<unknown>)(data)
  if (fields._tag === "Failure") return { ok: false, service, meta, description: `invalid ${service} request: ${plainIssue(fields.failure)}` }
  // A struct without fields lets any keys through: keep only what the service defines.
  const known = Object.keys(RequestData[service].fields)
  const value = Object.fromEntries([["service", service], ...Object.entries(fields.success as object).filter(([k]) => known.includes(k))]) as ClientRequest
  if (value.service === "history") {
    const hasChannel = value.channel !== undefined
    const hasPair = value.user !== undefined && value.peer !== undefined
    if (hasChannel === hasPair) return { ok: false, service, meta, description: "invalid history request: give either 'channel', or 'user' and 'peer'" }
    if (value.before !== undefined && value.after !== undefined) return { ok: false, service, meta, description: "invalid history request: give 'before' or 'after', not both" }
  }
  return { ok: true, value, meta }
}

// ---------------------------------------------------------------------------
// Replies and publications. Every outgoing message carries `timestamp` (ms)
// and `clock` in `data`, and `clock` at the top level too.

export interface Stamp {
  readonly clock: number
  readonly timestampMs: number
}

export const envelope = (service: string, data: Record<string, unknown>, stamp: Stamp) => ({
  service,
  data: { ...data, timestamp: stamp.timestampMs, clock: stamp.clock },
  clock: stamp.clock,
})

export const encodeEnvelope = (service: string, data: Record<string, unknown>, stamp: Stamp): Uint8Array =>
  encode(envelope(service, data, stamp))

/** The standard's success status differs per service. */
export const okStatus = (service: string): "sucesso" | "OK" => (service === "login" || service === "channel" ? "sucesso" : "OK")

/**
 * An error reply. The standard puts error text in `description` (login,
 * channel) or in `message` (publish, message); we send both, so a peer
 * reading either finds it.
 */
export const errorReply = (service: string | undefined, description: string, stamp: Stamp): Uint8Array =>
  encodeEnvelope(service ?? "error", { status: "erro", description, message: description }, stamp)

/** A history entry, as it appears in `history` replies and publications. */
export type Post =
  | { readonly service: "publish"; readonly user: string; readonly channel: string; readonly message: string; readonly timestamp: number; readonly clock: number; readonly origin: string; readonly seq: number; readonly prev?: number }
  | { readonly service: "message"; readonly src: string; readonly dst: string; readonly message: string; readonly timestamp: number; readonly clock: number; readonly origin: string; readonly seq: number }

export const cursorOf = (p: { clock: number; origin: string; seq: number }): [number, string, number] => [p.clock, p.origin, p.seq]

/** A publication as the standard has it: `[topic, {service, data}]`. */
export const publicationOf = (post: Post): { topic: string; payload: Uint8Array } => {
  const stamp = { clock: post.clock, timestampMs: post.timestamp }
  if (post.service === "publish") {
    const { user, channel, message, origin, seq, prev } = post
    return { topic: channel, payload: encodeEnvelope("publish", prev === undefined ? { user, channel, message, origin, seq } : { user, channel, message, origin, seq, prev }, stamp) }
  }
  const { src, dst, message, origin, seq } = post
  return { topic: dst, payload: encodeEnvelope("message", { src, dst, message, origin, seq }, stamp) }
}

// ---------------------------------------------------------------------------
// The client side: replies and publications, read leniently (any standard
// server may have sent them) but never trusted blindly.

export interface Incoming {
  readonly service: string
  readonly data: Record<string, unknown>
  readonly meta: Meta
}

export const decodeIncoming = (frame: Uint8Array): { ok: true; value: Incoming } | { ok: false; description: string } => {
  const env = decodeEnvelope(frame)
  if (!env.ok) return { ok: false, description: env.description }
  return { ok: true, value: env.envelope }
}

const PublishPayload = Schema.Struct({ user: Schema.String, channel: Schema.String, message: Schema.String })
const seqOf = (u: unknown) => (typeof u === "number" && Number.isSafeInteger(u) && u >= 0 ? u : undefined)
/** Ours, read leniently (a standard server sends none; a field of the wrong type is left out, not fatal). */
const positionOf = (data: Record<string, unknown>) => {
  const origin = typeof data.origin === "string" && data.origin.length <= 64 ? data.origin : undefined
  const seq = seqOf(data.seq)
  const prev = seqOf(data.prev)
  return { ...(origin === undefined ? {} : { origin }), ...(seq === undefined ? {} : { seq }), ...(prev === undefined ? {} : { prev }) }
}
const MessagePayload = Schema.Struct({ src: Schema.String, dst: Schema.String, message: Schema.String })

export type Publication =
  | {
      readonly service: "publish"
      readonly user: string
      readonly channel: string
      readonly message: string
      readonly meta: Meta
      /** Ours: the origin server, its seq, and the seq of its previous post on the channel. */
      readonly origin?: string
      readonly seq?: number
      readonly prev?: number
      /** Ours: not received live but filled from history (a gap in the publications). */
      readonly filled?: boolean
    }
  | { readonly service: "message"; readonly src: string; readonly dst: string; readonly message: string; readonly meta: Meta }

/** A channel post or private message received from the proxy. */
export const decodePublication = (frame: Uint8Array): { ok: true; value: Publication } | { ok: false; description: string } => {
  const inc = decodeIncoming(frame)
  if (!inc.ok) return inc
  const { service, data, meta } = inc.value
  if (service === "publish") {
    const r = Schema.decodeUnknownResult(PublishPayload)(data)
    return r._tag === "Success" ? { ok: true, value: { service, ...r.success, ...positionOf(data), meta } } : { ok: false, description: oneLine(r.failure) }
  }
  if (service === "message") {
    const r = Schema.decodeUnknownResult(MessagePayload)(data)
    return r._tag === "Success" ? { ok: true, value: { service, ...r.success, meta } } : { ok: false, description: oneLine(r.failure) }
  }
  return { ok: false, description: `unexpected publication service '${service.slice(0, Limits.serviceCharsMax)}'` }
}
