import { Data, Duration, Effect, Queue, Random, Result, type Scope } from "effect"
import { encode } from "../protocol/codec.ts"
import { type Publication, decodeIncoming, decodePublication } from "../protocol/messages.ts"
import { Transport, type TransportError } from "../transport/Transport.ts"
import { unseal } from "./credentials.ts"
import { Stamper } from "./runtime.ts"

export interface ClientConfig {
  /** The broker's front end (ROUTER), e.g. tcp://broker:5555. */
  readonly broker: string
  /** The proxy's subscriber side (XPUB), e.g. tcp://proxy:5558. */
  readonly proxy: string
  /** Per attempt. After a timeout the request is sent again on a fresh socket (Lazy Pirate). */
  readonly requestTimeoutMs: number
  /** Attempts per request, the first included. Retries carry the same request id, so a server applies them once. */
  readonly attemptsMax: number
}

export const defaultClientConfig: ClientConfig = {
  broker: "tcp://127.0.0.1:5555",
  proxy: "tcp://127.0.0.1:5558",
  requestTimeoutMs: 2_500,
  attemptsMax: 3,
}

export class ClientError extends Data.TaggedError("ClientError")<{
  readonly reason: "Unreachable" | "Malformed"
  readonly message: string
}> {}

export interface Reply {
  readonly service: string
  readonly ok: boolean
  /** The server's error text (`description`, or `message` for publish/message). */
  readonly error: string | undefined
  readonly data: Record<string, unknown>
  /** Requests sent for it: 1, or more when earlier attempts timed out (0: not sent). */
  readonly attempts: number
}

export interface BulletinClient {
  readonly call: (service: string, data?: Record<string, unknown>) => Effect.Effect<Reply, ClientError>
  /** With a password: claims the name on a first login, proves it on later ones (the token then goes with every request acting as it). */
  readonly login: (user: string, password?: string) => Effect.Effect<Reply, ClientError>
  readonly users: () => Effect.Effect<Reply, ClientError>
  readonly channel: (name: string) => Effect.Effect<Reply, ClientError>
  readonly channels: () => Effect.Effect<Reply, ClientError>
  readonly publish: (channel: string, message: string) => Effect.Effect<Reply, ClientError>
  readonly message: (dst: string, message: string) => Effect.Effect<Reply, ClientError>
  readonly history: (query: Record<string, unknown>) => Effect.Effect<Reply, ClientError>
  /** Channel posts and private messages for this client, topic matched exactly. */
  readonly publications: Queue.Dequeue<Publication>
  readonly subscribe: (topic: string) => Effect.Effect<void>
  readonly unsubscribe: (topic: string) => Effect.Effect<void>
  /** Gaps in channel publications so far: posts filled from history, and gaps that could not be filled. */
  readonly gaps: () => { readonly filled: number; readonly unfilled: number }
  readonly user: () => string | undefined
  readonly stamper: Stamper
}

/** Pages of one list read at most (a server that always says `more` cannot keep us reading). */
const listPagesMax = 1_000

/** Back-off after a "busy" reply: this many ms times the attempt, plus up to as much again at random. */
const busyBackoffMs = 100

/** A gap is filled from at most this many history pages (500 posts each); past that, it is counted unfilled. */
const fillPagesMax = 40

const notLoggedIn = (service: string) => Effect.succeed<Reply>({ service, ok: false, error: "log in first (login NAME)", data: {}, attempts: 0 })

const isOk = (data: Record<string, unknown>) => data.status === "sucesso" || data.status === "OK" || (data.status === undefined && data.description === undefined)

const errorText = (data: Record<string, unknown>) => {
  const t = data.description ?? (data.status === "erro" ? data.message : undefined)
  return typeof t === "string" ? t : data.status === "erro" ? "error" : undefined
}

/** A client session: requests through the broker, publications from the proxy, one Lamport clock. */
export const makeClient = (config: ClientConfig): Effect.Effect<BulletinClient, TransportError, Scope.Scope | Transport> =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const requester = yield* transport.requester(config.broker)
    const subscriber = yield* transport.subscriber(config.proxy, [])
    const stamper = new Stamper()
    const session = (yield* Random.nextIntBetween(0, 2 ** 48, { halfOpen: true })).toString(36)
    let counter = 0
    let user: string | undefined
    const seen: Record<string, number> = Object.create(null)

    const call = (service: string, data: Record<string, unknown> = {}) =>
      Effect.gen(function* () {
        const id = `${session}-${(counter += 1)}`
        const stamp = yield* stamper.stamp
        const frame = encode({ service, data: { ...data, id, timestamp: stamp.timestampMs, clock: stamp.clock } })
        // Lazy Pirate: a timeout sends the same request (same id) again on a
        // fresh socket; so does a reply that says a retry may cure it
        // (`retry: true`: a full disk, a server still missing our writes).
        let attempts = 0
        let lastError = ""
        for (;;) {
          attempts += 1
          const sent = yield* Effect.result(requester.request(frame, config.requestTimeoutMs))
          if (Result.isFailure(sent)) {
            lastError = sent.failure.message
            if (sent.failure.reason === "Timeout" && attempts < config.attemptsMax) continue
            return yield* Effect.fail(new ClientError({ reason: "Unreachable", message: `${service}: ${lastError} (after ${attempts} attempt${attempts === 1 ? "" : "s"})` }))
          }
          const decoded = decodeIncoming(sent.success)
          if (!decoded.ok) return yield* Effect.fail(new ClientError({ reason: "Malformed", message: `${service}: unreadable reply: ${decoded.description}` }))
          stamper.observe(decoded.value.meta.clock)
          // The answer to an earlier request of ours (sent again, answered twice): not ours; ask again.
          const answered = decoded.value.data.id
          if (typeof answered === "string" && answered !== id) {
            lastError = `a reply to another request (${answered.slice(0, 64)})`
            if (attempts < config.attemptsMax) continue
            return yield* Effect.fail(new ClientError({ reason: "Malformed", message: `${service}: ${lastError} (after ${attempts} attempts)` }))
          }
          if (decoded.value.data.retry === true && !isOk(decoded.value.data) && attempts < config.attemptsMax) {
            // A busy server: back off (more each time, with jitter) before asking again.
            if (decoded.value.data.busy === true) yield* Effect.sleep(Duration.millis(busyBackoffMs * attempts + (yield* Random.nextIntBetween(0, busyBackoffMs))))
            continue
          }
          return toReply(decoded.value, attempts)
        }
      })

    const toReply = (incoming: { readonly service: string; readonly data: Record<string, unknown> }, attempts: number): Reply => {
      const replyData = incoming.data
      // Our own writes, per origin: history requests carry them (read-your-writes).
      const cursor = replyData.cursor
      if (Array.isArray(cursor) && typeof cursor[1] === "string" && typeof cursor[2] === "number" && cursor[2] > (seen[cursor[1]] ?? 0)) seen[cursor[1]] = cursor[2]
      return { service: incoming.service, ok: isOk(replyData), error: errorText(replyData), data: replyData, attempts } satisfies Reply
    }

    /**
     * Every page of `users` or `channels` (our extension: `after`, `more`),
     * as one reply; a standard server answers everything at once, without `more`.
     */
    const listAll = (service: "users" | "channels") =>
      Effect.gen(function* () {
        const names: Array<string> = []
        let attempts = 0
        for (let page = 0; page < listPagesMax; page++) {
          const r = yield* call(service, names.length === 0 ? {} : { after: names.at(-1) })
          attempts += r.attempts
          const got = r.data[service]
          if (!r.ok || !Array.isArray(got)) return r
          names.push(...got.filter((n): n is string => typeof n === "string"))
          if (r.data.more !== true || got.length === 0) return { ...r, data: { ...r.data, [service]: names, more: false }, attempts }
        }
        return yield* Effect.fail(new ClientError({ reason: "Malformed", message: `${service}: more than ${listPagesMax} pages` }))
      })

    let token: string | undefined
    /** A claimed name's private topic and its key (from the login's reply). */
    let secret: { readonly topic: string; readonly key: Uint8Array } | undefined
    // Publications for this client: on its own name only private messages to
    // it, on a channel only that channel's posts. Anything else is dropped.
    // Bounded, not sliding: a slow reader holds the stream back (what is then
    // lost is lost on the wire, where `prev` shows it, and filled from history).
    const publications = yield* Queue.bounded<Publication>(transport.limits.subscriberQueueMessages)

    // Gaps (ours): per channel and origin, the last post seen. A post whose
    // `prev` (its origin's previous post on the channel) is past it means
    // publications were lost (a slow or paused subscriber, past the
    // high-water mark): those posts are read from history and delivered,
    // marked `filled`, before it.
    const lastSeen = new Map<string, { readonly seq: number; readonly clock: number }>()
    const seenKey = (channel: string, origin: string) => `${channel}\u0000${origin}`
    const gaps = { filled: 0, unfilled: 0 }
    const fillGap = (channel: string, origin: string, from: { readonly seq: number; readonly clock: number }, upTo: number) =>
      Effect.gen(function* () {
        const found: Array<Extract<Publication, { service: "publish" }>> = []
        let after: unknown = [from.clock, origin, from.seq]
        for (let page = 0; page < fillPagesMax; page++) {
          // `seen`: the server answers once it holds the origin's posts up to the gap's end.
          const r = yield* Effect.result(call("history", { channel, after, limit: 500, seen: { ...seen, [origin]: Math.max(seen[origin] ?? 0, upTo) } }))
          if (Result.isFailure(r) || !r.success.ok || !Array.isArray(r.success.data.messages)) break
          const got = r.success.data.messages as Array<Record<string, unknown>>
          let reached = false
          for (const m of got) {
            if (m.origin !== origin || typeof m.seq !== "number" || m.seq <= from.seq || m.seq > upTo) continue
            if (typeof m.user !== "string" || typeof m.message !== "string") continue
            const clock = typeof m.clock === "number" ? m.clock : undefined
            found.push({ service: "publish", user: m.user, channel, message: m.message, origin, seq: m.seq, ...(typeof m.prev === "number" ? { prev: m.prev } : {}), filled: true, meta: { clock, timestampMs: typeof m.timestamp === "number" ? m.timestamp : undefined, id: undefined } })
            if (m.seq === upTo) reached = true
          }
          const last = got[got.length - 1]
          if (reached || r.success.data.more !== true || last === undefined) break
          after = [last.clock, last.origin, last.seq]
        }
        return found
      })

    yield* Effect.forkScoped(
      Effect.forever(
        Effect.gen(function* () {
          const { topic, payload } = yield* Queue.take(subscriber.messages)
          const own = secret
          const hidden = own !== undefined && topic === own.topic
          const frame = own !== undefined && hidden ? unseal(own.key, payload) : payload
          if (frame === undefined) return yield* Effect.logDebug(`dropped a publication on the private topic not sealed with its key`)
          const p = decodePublication(frame)
          if (!p.ok) return yield* Effect.logDebug(`dropped unreadable publication on '${topic}': ${p.description}`)
          const pub = p.value
          const mine = pub.service === "message" ? pub.dst === user && (hidden || topic === user) : pub.channel === topic
          if (!mine) return
          stamper.observe(pub.meta.clock)
          if (pub.service === "publish" && pub.origin !== undefined && pub.seq !== undefined) {
            const key = seenKey(pub.channel, pub.origin)
            const last = lastSeen.get(key)
            if (last !== undefined && pub.seq <= last.seq) return // had it already (filled, or sent twice)
            if (last !== undefined && pub.prev !== undefined && pub.prev > last.seq) {
              const missed = yield* fillGap(pub.channel, pub.origin, last, pub.prev)
              gaps.filled += missed.length
              if (missed[missed.length - 1]?.seq !== pub.prev) gaps.unfilled += 1
              for (const m of missed) yield* Queue.offer(publications, m)
            }
            lastSeen.set(key, { seq: pub.seq, clock: pub.meta.clock ?? 0 })
          }
          yield* Queue.offer(publications, pub)
        }),
      ),
    )

    const login = (name: string, password?: string) =>
      Effect.tap(call("login", password === undefined ? { user: name } : { user: name, password }), (r) =>
        r.ok
          ? Effect.gen(function* () {
              if (user !== undefined && user !== name) yield* subscriber.unsubscribe(user)
              if (secret !== undefined) yield* subscriber.unsubscribe(secret.topic)
              user = name
              token = typeof r.data.token === "string" ? r.data.token : undefined
              const { topic, topicKey } = r.data
              secret =
                typeof topic === "string" && typeof topicKey === "string" && /^~[0-9a-f]{32}$/.test(topic) && /^[0-9a-f]{64}$/.test(topicKey)
                  ? { topic, key: Buffer.from(topicKey, "hex") }
                  : undefined
              // The name's public topic too: a server that has not yet heard of the claim publishes there.
              yield* subscriber.subscribe(name)
              if (secret !== undefined) yield* subscriber.subscribe(secret.topic)
            })
          : Effect.void,
      )
    const withToken = (data: Record<string, unknown>) => (token === undefined ? data : { ...data, token })

    return {
      call,
      login,
      users: () => listAll("users"),
      channel: (name) => call("channel", { channel: name }),
      channels: () => listAll("channels"),
      publish: (channel, message) => (user === undefined ? notLoggedIn("publish") : call("publish", withToken({ user, channel, message }))),
      message: (dst, message) => (user === undefined ? notLoggedIn("message") : call("message", withToken({ src: user, dst, message }))),
      history: (query) => call("history", withToken(Object.keys(seen).length === 0 ? query : { ...query, seen: { ...seen } })),
      publications,
      subscribe: subscriber.subscribe,
      unsubscribe: (topic) =>
        Effect.andThen(
          Effect.sync(() => {
            // Posts of a channel one no longer follows are no gap when one follows it again.
            for (const key of lastSeen.keys()) if (key.startsWith(`${topic}\u0000`)) lastSeen.delete(key)
          }),
          subscriber.unsubscribe(topic),
        ),
      gaps: () => ({ ...gaps }),
      user: () => user,
      stamper,
    } satisfies BulletinClient
  })
