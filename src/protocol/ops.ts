import { Schema } from "effect"
import { Limits } from "./limits.ts"
import { Name, Text, type Post } from "./messages.ts"

/**
 * Every state change is an operation with an origin server and a per-origin
 * sequence number, stamped with the Lamport clock it happened at. Ops are what
 * servers store and what they replicate to each other, so they are a wire
 * format too: decoded with this schema before they touch a store.
 */
const Count = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))
const base = {
  origin: Name,
  seq: Count.check(Schema.isGreaterThanOrEqualTo(1)),
  clock: Count.check(Schema.isLessThanOrEqualTo(Limits.clockMax)),
  timestamp: Count,
  /** The client request that caused it, so a retry is applied once. */
  id: Schema.optionalKey(Schema.UndefinedOr(Schema.String.check(Schema.isMaxLength(Limits.requestIdCharsMax)))),
}

const Hex = Schema.String.check(Schema.isPattern(/^[0-9a-f]{16,128}$/))

export const Op = Schema.Union([
  Schema.Struct({ kind: Schema.Literal("user"), user: Name, ...base }),
  Schema.Struct({ kind: Schema.Literal("channel"), channel: Name, ...base }),
  /**
   * `prev` (ours): the seq of the origin's previous post on this channel (0:
   * none). A subscriber that sees it skip a post it did not get knows it
   * lost publications, and fills them from history.
   */
  Schema.Struct({ kind: Schema.Literal("publish"), user: Name, channel: Name, message: Text, prev: Schema.optionalKey(Count), ...base }),
  Schema.Struct({ kind: Schema.Literal("message"), src: Name, dst: Name, message: Text, ...base }),
  /**
   * A claimed name (accounts, our extension): the password's salted hash.
   * The first claim in the total order (clock, origin, seq) holds, on every
   * replica, whatever order the claims arrive in.
   */
  Schema.Struct({ kind: Schema.Literal("account"), user: Name, salt: Hex, hash: Hex, ...base }),
])
export type Op = typeof Op.Type

/** An op before the server gives it its origin and sequence number. */
export type OpInput = Op extends infer O ? (O extends Op ? Omit<O, "origin" | "seq"> : never) : never

export const decodeOp = (u: unknown): Op | undefined => {
  const r = Schema.decodeUnknownResult(Op)(u)
  return r._tag === "Success" ? r.success : undefined
}

/** The history entry an op shows as (channel posts and private messages only). */
export const postOf = (op: Op): Post | undefined => {
  const { clock, timestamp, origin, seq } = op
  if (op.kind === "publish") return { service: "publish", user: op.user, channel: op.channel, message: op.message, timestamp, clock, origin, seq, ...(op.prev === undefined ? {} : { prev: op.prev }) }
  if (op.kind === "message") return { service: "message", src: op.src, dst: op.dst, message: op.message, timestamp, clock, origin, seq }
  return undefined
}
