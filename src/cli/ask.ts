import { decode, encode } from "../protocol/codec.ts"
import type { ClusterKey } from "../transport/keys.ts"

/**
 * One request on a fresh REQ socket, with a timeout, presenting the cluster's
 * key where given (the reference and peer ports are cluster links): what
 * `bulletin health` and `bulletin status` ask a role. The envelope by hand
 * and zeromq loaded on first use, so neither command loads effect: a caller
 * stamps Lamport clock 1 and no physical time worth syncing.
 */
export const askOnce = async (at: string, service: string, o: { readonly timeoutMs: number; readonly key: ClusterKey | undefined; readonly from: string; readonly data?: Record<string, unknown> }) => {
  const curve = o.key === undefined ? {} : { curveServerKey: o.key.publicKey, curvePublicKey: o.key.publicKey, curveSecretKey: o.key.secretKey }
  const zmq = await import("zeromq")
  const req = new zmq.Request({ linger: 0, receiveTimeout: o.timeoutMs, sendTimeout: o.timeoutMs, ...curve })
  req.connect(at)
  try {
    await req.send(encode({ service, data: { ...o.data, from: o.from, timestamp: 0, clock: 1 } }))
    const [reply] = await req.receive()
    const r = decode(reply!)
    if (!r.ok) throw new Error(`${at}: unreadable reply to ${service}`)
    return ((r.value as { data?: Record<string, unknown> }).data ?? {}) as Record<string, unknown>
  } finally {
    req.close()
  }
}
