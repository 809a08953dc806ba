import { Schema } from "effect"
import { decodeEnvelope, type Meta, Name } from "./messages.ts"
import { Limits } from "./limits.ts"

/**
 * Catch-up between servers (REQ to a peer's 5560), our format:
 *
 *   request  { service: "replicate", data: { vector: { origin: seq, ... } } }
 *            "I hold every op of `origin` up to `seq`"
 *   reply    { service: "replicate", data: { ops: Op[], more: boolean } }
 *            ops the replier holds past that vector, per origin ascending,
 *            at most `replicateReplyBytesMax`; `more`: ask again
 *
 * Live ops travel on the proxy, topic `replication`, one frame per durable
 * batch of the origin's own ops, in seq order (sealed with the cluster key):
 *   { service: "replication", data: { ops: Op[] } }
 * (`{ op }`, one op a frame, is still read: servers before batching.)
 */
const Count = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))

export const ReplicateRequest = Schema.Struct({
  vector: Schema.Record(Name, Count).check(Schema.isMaxProperties(Limits.originsMax)),
})
export type ReplicateRequest = typeof ReplicateRequest.Type

export type DecodedReplicate =
  | { readonly ok: true; readonly value: ReplicateRequest; readonly meta: Meta }
  | { readonly ok: false; readonly description: string; readonly meta: Meta | undefined }

export const decodeReplicate = (frame: Uint8Array): DecodedReplicate => {
  const env = decodeEnvelope(frame)
  if (!env.ok) return { ok: false, description: env.description, meta: env.meta }
  if (env.envelope.service !== "replicate") return { ok: false, description: `expected service 'replicate'`, meta: env.envelope.meta }
  const r = Schema.decodeUnknownResult(ReplicateRequest)(env.envelope.data)
  if (r._tag === "Failure") return { ok: false, description: `invalid replicate request: ${String(r.failure).replace(/\s*\n\s*/g, " ")}`, meta: env.envelope.meta }
  return { ok: true, value: r.success, meta: env.envelope.meta }
}

/** The service of a request frame, without decoding the rest (the peer port serves two layers). */
export const serviceOf = (frame: Uint8Array): string | undefined => {
  const env = decodeEnvelope(frame)
  return env.ok ? env.envelope.service : undefined
}
