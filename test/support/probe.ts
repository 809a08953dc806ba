/**
 * Asks a cluster what it holds, from wherever it runs (the multi-host test runs
 * it inside a host's namespace): the reference's `list`, and of every server
 * named there its `ping` (whom it follows), its `clock`, and, with `ops`, its
 * whole op log through `replicate` pages from an empty vector.
 *
 *   node --import tsx test/support/probe.ts '{"reference":"tcp://10.81.0.4:5559","ops":true}'
 *
 * Prints one JSON line. Each question is a fresh REQ with a timeout; a server
 * that does not answer is reported with an error, not waited for.
 */
import * as zmq from "zeromq"
import { decode } from "../../src/protocol/codec.ts"
import { encodeEnvelope } from "../../src/protocol/messages.ts"
import { parseKey } from "../../src/transport/keys.ts"

interface Args {
  readonly reference: string
  readonly ops?: boolean
  readonly timeoutMs?: number
}

const args = JSON.parse(process.argv[2] ?? "{}") as Args
const timeoutMs = args.timeoutMs ?? 2_000

const ask = async (endpoint: string, service: string, data: Record<string, unknown>) => {
  // The cluster's ports take only the cluster's key (inherited from the test, BULLETIN_CLUSTER_KEY).
  const key = process.env.BULLETIN_CLUSTER_KEY === undefined ? undefined : parseKey(process.env.BULLETIN_CLUSTER_KEY, "BULLETIN_CLUSTER_KEY")
  const curve = key === undefined ? {} : { curveServerKey: key.publicKey, curvePublicKey: key.publicKey, curveSecretKey: key.secretKey }
  const req = new zmq.Request({ linger: 0, receiveTimeout: timeoutMs, sendTimeout: timeoutMs, maxMessageSize: 8 << 20, ...curve })
  req.connect(endpoint)
  try {
    await req.send(encodeEnvelope(service, data, { clock: 1, timestampMs: 0 }))
    const [reply] = await req.receive()
    const m = decode(reply!)
    if (!m.ok) throw new Error(`unreadable reply to ${service}`)
    return (m.value as { data: Record<string, unknown> }).data
  } finally {
    req.close()
  }
}

interface OpLite {
  readonly origin: string
  readonly seq: number
  readonly clock: number
  readonly kind: string
  readonly id?: string
  readonly channel?: string
  readonly user?: string
  readonly message?: string
}

const allOps = async (endpoint: string) => {
  const vector: Record<string, number> = {}
  const ops: Array<OpLite> = []
  for (let page = 0; page < 10_000; page++) {
    const r = (await ask(endpoint, "replicate", { vector })) as { ops?: Array<OpLite>; more?: boolean; description?: string }
    if (r.ops === undefined) throw new Error(`replicate: ${r.description ?? "no ops in reply"}`)
    for (const op of r.ops) {
      ops.push({ origin: op.origin, seq: op.seq, clock: op.clock, kind: op.kind, id: op.id, channel: op.channel, user: op.user, message: op.message })
      vector[op.origin] = Math.max(vector[op.origin] ?? 0, op.seq)
    }
    if (r.more !== true) return ops
  }
  throw new Error("replicate: more than 10000 pages")
}

const main = async () => {
  const { list } = (await ask(args.reference, "list", {})) as { list: Array<{ name: string; rank: number; addr?: string }> }
  const servers = await Promise.all(
    list.map(async (s) => {
      if (s.addr === undefined) return { name: s.name, rank: s.rank, error: "no address listed" }
      try {
        const ping = (await ask(s.addr, "ping", {})) as { coordinator?: string; term?: { epoch: number; rank: number } }
        const t0 = Date.now()
        const { time } = (await ask(s.addr, "clock", {})) as { time: number }
        const t1 = Date.now()
        const ops = args.ops === true ? await allOps(s.addr) : undefined
        // `time` as seen at the middle of the round trip, against this host's clock.
        return { name: s.name, rank: s.rank, addr: s.addr, coordinator: ping.coordinator, term: ping.term, offsetMs: time - (t0 + t1) / 2, rttMs: t1 - t0, ops }
      } catch (e) {
        return { name: s.name, rank: s.rank, addr: s.addr, error: e instanceof Error ? e.message : String(e) }
      }
    }),
  )
  return { list, servers }
}

// Exit only once the (possibly large) line is out: a pipe is written asynchronously.
const finish = (out: unknown, code: number) => process.stdout.write(`${JSON.stringify(out)}\n`, () => process.exit(code))
main().then(
  (out) => finish(out, 0),
  (e: unknown) => finish({ error: e instanceof Error ? e.message : String(e) }, 1),
)
