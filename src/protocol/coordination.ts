import { Schema } from "effect"
import { decodeEnvelope, type Meta } from "./messages.ts"
import { Name } from "./messages.ts"
import { Limits } from "./limits.ts"

/**
 * Server <-> reference (REQ to 5559) and server <-> server (REQ to 5560)
 * services, and the coordinator announcement on topic `servers`.
 *
 * Standard: rank, list, heartbeat, election, clock, and the announcement
 * `{ service: "election", data: { coordinator } }`. Ours (extra fields and
 * services a standard peer ignores): `addr` in rank/list, `term` everywhere
 * in the election, `clockAdjust` to deliver Berkeley offsets, `ping` for
 * follower -> coordinator heartbeats.
 */

const Count = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))
/** A peer endpoint, e.g. tcp://127.0.1.2:5560. */
const Addr = Schema.String.check(Schema.isMaxLength(256), Schema.isPattern(/^tcp:\/\/[^\s;]+:\d+$/))

/**
 * A coordinator's term: an epoch and the rank of the server that claimed it.
 * Ordered by epoch, then rank. Two servers never claim the same term because
 * the rank is part of it (the ballot-number trick): partitions can each elect
 * a coordinator, but never with equal terms, so a stale one is recognised.
 */
const Rank = Count.check(Schema.isLessThanOrEqualTo(Limits.rankMax))
export const Term = Schema.Struct({ epoch: Count.check(Schema.isLessThanOrEqualTo(Limits.termEpochMax)), rank: Rank })
export type Term = typeof Term.Type

export const ReferenceRequestData = {
  rank: Schema.Struct({ user: Name, addr: Schema.optionalKey(Addr) }),
  list: Schema.Struct({}),
  heartbeat: Schema.Struct({ user: Name }),
} as const

export const PeerRequestData = {
  election: Schema.Struct({ from: Schema.optionalKey(Name), rank: Schema.optionalKey(Rank), term: Schema.optionalKey(Term) }),
  clock: Schema.Struct({}),
  /** Berkeley offset delivery: add `offsetMs` (signed) to your clock, by slewing. */
  clockAdjust: Schema.Struct({
    offsetMs: Schema.Finite.check(Schema.isBetween({ minimum: -Limits.clockAdjustMsMax, maximum: Limits.clockAdjustMsMax })),
    term: Schema.optionalKey(Term),
    /** The Berkeley round: a duplicated delivery of the same round's offset is applied once. */
    round: Schema.optionalKey(Count),
    from: Schema.optionalKey(Name),
  }),
  /** Follower -> coordinator liveness check. */
  ping: Schema.Struct({ from: Schema.optionalKey(Name), term: Schema.optionalKey(Term) }),
  /** Follower -> coordinator: I handled 10 messages, run a Berkeley round (rate-limited). */
  sync: Schema.Struct({ from: Schema.optionalKey(Name) }),
} as const

export const Announcement = Schema.Struct({ coordinator: Name, rank: Schema.optionalKey(Rank), term: Schema.optionalKey(Term) })
export type Announcement = typeof Announcement.Type

export const coordinatorTopic = "servers"

type Fields<T extends Record<string, Schema.Top>> = { [K in keyof T]: { readonly service: K } & T[K]["Type"] }[keyof T]
export type ReferenceRequest = Fields<typeof ReferenceRequestData>
export type PeerRequest = Fields<typeof PeerRequestData>

export type DecodedRequest<T> =
  | { readonly ok: true; readonly value: T; readonly meta: Meta }
  | { readonly ok: false; readonly service: string | undefined; readonly description: string; readonly meta: Meta | undefined }

const oneLine = (e: unknown) => String(e).replace(/^SchemaError\(|\)$/g, "").replace(/\s*\n\s*/g, " ")

const decodeWith =
  <T extends Record<string, Schema.Codec<unknown>>>(services: T) =>
  (frame: Uint8Array): DecodedRequest<Fields<T>> => {
    const env = decodeEnvelope(frame)
    if (!env.ok) return env
    const { service, data, meta } = env.envelope
    if (!Object.hasOwn(services, service)) {
      const s = service.slice(0, Limits.serviceCharsMax)
      return { ok: false, service: s, meta, description: `unknown service '${s}'; known: ${Object.keys(services).join(", ")}` }
    }
    const r = Schema.decodeUnknownResult(services[service]!)(data)
    if (r._tag === "Failure") return { ok: false, service, meta, description: `invalid ${service} request: ${oneLine(r.failure)}` }
    return { ok: true, value: { ...(r.success as object), service } as Fields<T>, meta }
  }

export const decodeReferenceRequest = decodeWith(ReferenceRequestData as unknown as Record<string, Schema.Codec<unknown>>) as (frame: Uint8Array) => DecodedRequest<ReferenceRequest>
export const decodePeerRequest = decodeWith(PeerRequestData as unknown as Record<string, Schema.Codec<unknown>>) as (frame: Uint8Array) => DecodedRequest<PeerRequest>

/** Replies as the coordination layer reads them: any map, fields checked where used. */
export const ListEntry = Schema.Struct({ name: Name, rank: Rank, addr: Schema.optionalKey(Schema.String) })
export type ListEntry = typeof ListEntry.Type

export const decodeAnnouncement = (data: unknown): Announcement | undefined => {
  const r = Schema.decodeUnknownResult(Announcement)(data)
  return r._tag === "Success" ? r.success : undefined
}

export const decodeList = (data: unknown): ReadonlyArray<ListEntry> | undefined => {
  const r = Schema.decodeUnknownResult(Schema.Struct({ list: Schema.Array(ListEntry) }))(data)
  return r._tag === "Success" ? r.success.list : undefined
}
