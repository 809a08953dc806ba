import { Duration, Effect, Queue } from "effect"
import { type BulletinClient, type ClientConfig, type Reply, makeClient } from "../actors/client.ts"
import { encode } from "../protocol/codec.ts"
import { decodeIncoming } from "../protocol/messages.ts"
import { Transport } from "../transport/Transport.ts"
import type { Prng } from "./prng.ts"

/**
 * What the simulated clients do: the real client (`makeClient`), through the
 * simulated broker and proxy, every service with request ids and Lazy
 * Pirate retries. The sim only decides what to ask and when, and writes down
 * what was asked and answered, for the checkers (Jepsen's set check,
 * read-your-writes, no request waiting for ever).
 */
export type WriteKind = "user" | "channel" | "post" | "message"

export interface Write {
  readonly kind: WriteKind
  readonly client: string
  /** The user or channel name, or the text of a post or private message (unique per client). */
  readonly key: string
  readonly channel?: string
  readonly src?: string
  readonly dst?: string
  readonly startedAt: number
  endedAt: number | undefined
  /** true: acknowledged; false: refused with an error; undefined: no answer (it may or may not have been applied). */
  acked: boolean | undefined
  cursor: readonly [number, string, number] | undefined
  /** Sent more than once (a retry may have been applied on two servers). */
  retried: boolean
  error: string | undefined
}

export interface Call {
  readonly client: string
  readonly service: string
  readonly startedAt: number
  endedAt: number | undefined
}

/** Everything the clients asked and were told. */
export class Ledger {
  readonly writes: Array<Write> = []
  readonly calls: Array<Call> = []
  /** Read-your-writes violations seen by clients (a history that lacks one of their acknowledged posts). */
  readonly violations: Array<string> = []
  /** history requests a server could not serve with the client's own writes (an error, retried, then given up). */
  historyRefused = 0
  historyServed = 0
  readonly usersAcked = new Set<string>()
  readonly channelsAcked = new Set<string>()
  /** Users and channels any client or bot tried to create (a name not here is a phantom). */
  readonly usersTried = new Set<string>()
  readonly channelsTried = new Set<string>()

  acked(kind: WriteKind): ReadonlyArray<Write> {
    return this.writes.filter((w) => w.kind === kind && w.acked === true)
  }
}

type Cursor = readonly [number, string, number]
const compareCursors = (a: Cursor, b: Cursor) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0) || a[2] - b[2]
const cursorOfReply = (r: Reply): Cursor | undefined => {
  const c = r.data.cursor
  return Array.isArray(c) && typeof c[0] === "number" && typeof c[1] === "string" && typeof c[2] === "number" ? [c[0], c[1], c[2]] : undefined
}

export interface PostSeen {
  readonly text: string
  readonly clock: number
  readonly origin: string
  readonly seq: number
}

const postsOf = (r: Reply): ReadonlyArray<PostSeen> =>
  (Array.isArray(r.data.messages) ? (r.data.messages as Array<Record<string, unknown>>) : []).map((m) => ({
    text: String(m.message),
    clock: Number(m.clock),
    origin: String(m.origin),
    seq: Number(m.seq),
  }))

export interface WorkloadOptions {
  readonly name: string
  readonly config: ClientConfig
  readonly ledger: Ledger
  readonly prng: Prng
  readonly now: () => number
  /** Simulated time at which the client stops starting requests. */
  readonly until: number
  readonly writesPerSecond: number
  readonly readsPerSecond: number
  /** Users the other clients are (targets of private messages). */
  readonly peers: ReadonlyArray<string>
  /** This client's password, if its name is to be claimed (accounts). */
  readonly password?: string
}

/** One client's session: logs in, then writes and reads at random until `until`. */
export const clientWorkload = (o: WorkloadOptions): Effect.Effect<void, unknown, Transport> =>
  Effect.scoped(
    Effect.gen(function* () {
      const client = yield* makeClient(o.config)
      const { ledger, prng, now } = o
      const user = o.name
      let loggedIn = false
      let n = 0
      const channels = new Set<string>()

      /** A call, written down: when it started and ended (a call that never ends is a check failure). */
      const tracked = (service: string, effect: Effect.Effect<Reply, unknown>) =>
        Effect.suspend(() => {
          const call: Call = { client: user, service, startedAt: now(), endedAt: undefined }
          ledger.calls.push(call)
          return effect.pipe(
            Effect.result,
            Effect.tap(() => Effect.sync(() => void (call.endedAt = now()))),
          )
        })

      const write = (kind: WriteKind, key: string, fields: Partial<Write>, effect: Effect.Effect<Reply, unknown>) =>
        Effect.gen(function* () {
          const w: Write = { kind, client: user, key, startedAt: now(), endedAt: undefined, acked: undefined, cursor: undefined, retried: false, error: undefined, ...fields }
          ledger.writes.push(w)
          const result = yield* tracked(kind, effect)
          w.endedAt = now()
          if (result._tag === "Failure") {
            w.retried = true
            w.error = String((result.failure as { message?: unknown })?.message ?? result.failure)
            return undefined
          }
          const reply = result.success
          w.retried = reply.attempts > 1
          w.acked = reply.ok
          w.error = reply.error
          w.cursor = cursorOfReply(reply)
          return reply
        })

      const login = Effect.gen(function* () {
        ledger.usersTried.add(user)
        const r = yield* write("user", user, {}, client.login(user, o.password))
        if (r?.ok === true) {
          loggedIn = true
          ledger.usersAcked.add(user)
        }
      })

      const createChannel = (name: string) =>
        Effect.gen(function* () {
          ledger.channelsTried.add(name)
          const r = yield* write("channel", name, {}, client.channel(name))
          if (r?.ok === true) {
            channels.add(name)
            ledger.channelsAcked.add(name)
          }
        })

      const post = Effect.gen(function* () {
        const known = [...channels].sort()
        if (known.length === 0) return yield* createChannel(`ch${prng.int(1, 4)}`)
        const channel = prng.pick(known)
        const text = `${user}-p${(n += 1)}`
        yield* write("post", text, { channel }, client.publish(channel, text))
      })

      const message = Effect.gen(function* () {
        const others = o.peers.filter((p) => p !== user && ledger.usersAcked.has(p))
        if (others.length === 0) return yield* post
        const dst = prng.pick(others)
        const text = `${user}-m${(n += 1)}`
        yield* write("message", text, { src: user, dst }, client.message(dst, text))
      })

      /** Read-your-writes: every post of ours acknowledged before we asked, and in the page's range, is in the page. */
      const checkOwn = (what: string, mine: ReadonlyArray<Write>, askedAt: number, reply: Reply) => {
        const posts = postsOf(reply)
        const texts = new Set(posts.map((p) => p.text))
        const first = posts[0]
        for (const w of mine) {
          if (w.acked !== true || w.endedAt === undefined || w.endedAt >= askedAt || w.cursor === undefined) continue
          // A write retried on two servers may show as the other server's op, ordered elsewhere: not conclusive.
          if (w.retried) continue
          const inRange = reply.data.more !== true || (first !== undefined && compareCursors(w.cursor, [first.clock, first.origin, first.seq]) >= 0)
          if (inRange && !texts.has(w.key)) {
            ledger.violations.push(`${user} at ${askedAt.toFixed(0)} ms: ${what} lacks its own post '${w.key}' acknowledged at ${w.endedAt.toFixed(0)} ms (cursor ${w.cursor.join("/")})`)
          }
        }
      }

      /** A history read, checked for our own acknowledged writes (`mine`) that the page's range covers. */
      const readHistory = (what: string, query: Record<string, unknown>, mine: (w: Write) => boolean) =>
        Effect.gen(function* () {
          const askedAt = now()
          const result = yield* tracked("history", client.history({ ...query, limit: 50 }))
          if (result._tag === "Failure") return
          const r = result.success
          if (!r.ok) {
            ledger.historyRefused += 1
            return
          }
          ledger.historyServed += 1
          checkOwn(what, ledger.writes.filter((w) => w.client === user && mine(w)), askedAt, r)
        })

      const readChannel = Effect.suspend(() => {
        const known = [...channels].sort()
        if (known.length === 0) return Effect.void
        const channel = prng.pick(known)
        return readHistory(`history of ${channel}`, { channel }, (w) => w.kind === "post" && w.channel === channel)
      })

      const readConversation = Effect.suspend(() => {
        const others = o.peers.filter((p) => p !== user)
        if (others.length === 0) return Effect.void
        const peer = prng.pick(others)
        return readHistory(`conversation with ${peer}`, { user, peer }, (w) => w.kind === "message" && w.dst === peer)
      })

      const listChannels = Effect.gen(function* () {
        const result = yield* tracked("channels", client.channels())
        if (result._tag === "Success" && Array.isArray(result.success.data.channels)) {
          for (const c of result.success.data.channels as Array<unknown>) if (typeof c === "string") channels.add(c)
        }
      })

      const total = o.writesPerSecond + o.readsPerSecond
      if (total <= 0) return
      const writeShare = o.writesPerSecond / total
      yield* Effect.sleep(Duration.millis(prng.real(0, 1_000 / total)))
      while (now() < o.until) {
        if (!loggedIn) yield* login
        else if (prng.next() < writeShare) {
          const x = prng.next()
          if (x < 0.1) yield* createChannel(`ch${prng.int(1, 4)}`)
          else if (x < 0.15) yield* login
          else if (x < 0.65) yield* post
          else yield* message
        } else {
          const x = prng.next()
          if (x < 0.5) yield* readChannel
          else if (x < 0.65) yield* readConversation
          else if (x < 0.8) yield* tracked("users", client.users())
          else yield* listChannels
        }
        yield* Effect.sleep(Duration.millis(prng.real(0.5, 1.5) * (1_000 / total)))
      }
    }),
  )

/** Every post of a channel or conversation, paged forward through the broker; undefined if a page could not be read. */
export const readAll = (client: BulletinClient, query: Record<string, unknown>): Effect.Effect<ReadonlyArray<PostSeen> | undefined> =>
  Effect.gen(function* () {
    const out: Array<PostSeen> = []
    let after: Cursor | number = 0
    for (let page = 0; page < 1_000; page++) {
      const result = yield* Effect.result(client.history({ ...query, after, limit: 500 }))
      if (result._tag === "Failure" || !result.success.ok) return undefined
      const posts = postsOf(result.success)
      out.push(...posts)
      const last = posts.at(-1)
      if (result.success.data.more !== true || last === undefined) return out
      after = [last.clock, last.origin, last.seq]
    }
    return undefined
  })

/**
 * A hostile client (the simulator's fault `hostile`): through the broker, at
 * random, requests no honest client sends — a Lamport clock far ahead, or just
 * inside the window, undecodable bytes, unknown services, wrong types, names
 * out of bounds, a `seen` no server can satisfy. Whatever it does, the honest
 * clients' properties must hold and every server must keep serving.
 */
export const hostileWorkload = (o: { readonly config: ClientConfig; readonly prng: Prng; readonly now: () => number; readonly until: number; readonly clockAheadMax: number }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const transport = yield* (yield* Transport).requester(o.config.broker)
      const { prng } = o
      let lastClock = 0
      const frames: Array<() => Uint8Array> = [
        () => encode({ service: "channels", data: { clock: lastClock + o.clockAheadMax * (2 + prng.int(0, 1_000)) } }),
        () => encode({ service: "publish", data: { user: "mallory", channel: "ch1", message: "poison", clock: lastClock + o.clockAheadMax * 1_000_000 } }),
        () => encode({ service: "users", data: { clock: lastClock + o.clockAheadMax - 1 } }),
        () => Uint8Array.from({ length: prng.int(1, 64) }, () => prng.int(0, 255)),
        () => encode({ service: `nope-${prng.int(0, 9)}`, data: {} }),
        () => encode({ service: "login", data: { user: 42 } }),
        () => encode({ service: "channel", data: { channel: "x".repeat(prng.int(33, 200)) } }),
        () => encode({ service: "history", data: { channel: "ch1", seen: { ghost: 1 + prng.int(0, 1_000) } } }),
        () => encode({ service: "history", data: { channel: "ch1", limit: -5 } }),
        () => encode([1, 2, 3]),
        // An impostor: posting and sending as u1 (a claimed name), and reading its conversations, without its token.
        () => encode({ service: "publish", data: { user: "u1", channel: "ch1", message: `impostor-${prng.int(0, 1e9)}`, token: `${prng.int(0, 9)}.${"0".repeat(32)}.${"f".repeat(64)}` } }),
        () => encode({ service: "message", data: { src: "u1", dst: "u2", message: `impostor-${prng.int(0, 1e9)}` } }),
        () => encode({ service: "history", data: { user: "u1", peer: "u2" } }),
      ]
      while (o.now() < o.until) {
        const reply = yield* Effect.result(transport.request(prng.pick(frames)(), 1_000))
        if (reply._tag === "Success") {
          const m = decodeIncoming(reply.success)
          if (m.ok && m.value.meta.clock !== undefined) lastClock = Math.max(lastClock, m.value.meta.clock)
        }
        yield* Effect.sleep(Duration.millis(prng.real(50, 300)))
      }
    }),
  )

/**
 * An intruder (the simulator's fault `intruder`): a host on the cluster's
 * network without the cluster's key, doing what a fake server would — ask the
 * reference for a rank, call elections and correct clocks on the peer ports,
 * pull the op log, take requests from the broker's back end, and publish
 * forged replication ops, announcements and posts. With the cluster secured
 * (CURVE, the default) none of its connections is let in.
 */
export const intruderWorkload = (o: {
  readonly prng: Prng
  readonly now: () => number
  readonly until: number
  readonly reference: string
  readonly peers: ReadonlyArray<string>
  readonly brokerBack: string
  readonly proxyFront: string
  readonly victim: string
}) =>
  Effect.scoped(
    Effect.gen(function* () {
      const transport = yield* Transport
      const cluster = { cluster: true } as const
      const reference = yield* transport.requester(o.reference, cluster)
      const peers = yield* Effect.all(o.peers.map((p) => transport.requester(p, cluster)))
      const publisher = yield* transport.publisher(o.proxyFront, cluster)
      // A rogue back end: whatever the broker hands it, it "acknowledges".
      const rogue = yield* transport.replier(o.brokerBack, "connect", cluster)
      yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(rogue.requests), (r) => r.reply(encode({ service: "publish", data: { status: "OK" } })))))
      const { prng } = o
      const term = { epoch: 2 ** 40, rank: 64 }
      while (o.now() < o.until) {
        const stamp = { clock: 1, timestamp: 0 }
        switch (prng.int(0, 5)) {
          case 0:
            yield* Effect.result(reference.request(encode({ service: "rank", data: { user: `mallory${prng.int(0, 99)}`, addr: "tcp://mallory:5560", ...stamp } }), 500))
            break
          case 1:
            yield* Effect.result(prng.pick(peers).request(encode({ service: "election", data: { from: "mallory", rank: 64, term, ...stamp } }), 500))
            break
          case 2:
            yield* Effect.result(prng.pick(peers).request(encode({ service: "clockAdjust", data: { offsetMs: 500_000, from: "s1", round: prng.int(0, 1e6), ...stamp } }), 500))
            break
          case 3:
            yield* Effect.result(prng.pick(peers).request(encode({ service: "replicate", data: { vector: {}, ...stamp } }), 500))
            break
          case 4:
            yield* publisher.publish("servers", encode({ service: "election", data: { coordinator: "mallory", rank: 64, term, ...stamp } }))
            break
          default:
            yield* publisher.publish("replication", encode({ service: "replication", data: { op: { kind: "publish", user: o.victim, channel: "ch1", message: `forged-${prng.int(0, 1e9)}`, origin: "s1", seq: 1_000_000 + prng.int(0, 1e6), clock: 7, timestamp: 0 }, ...stamp } }))
        }
        yield* Effect.sleep(Duration.millis(prng.real(50, 250)))
      }
    }),
  )
