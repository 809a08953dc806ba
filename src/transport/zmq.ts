import { Effect, Layer, Queue, Schedule, Semaphore, type Scope } from "effect"
import * as zmq from "zeromq"
import { Limits } from "../protocol/limits.ts"
import { type Security, openSecurity, z85 } from "./keys.ts"
import {
  type IncomingRequest,
  type LinkOptions,
  type Publication,
  type Publisher,
  type Replier,
  type Requester,
  type Subscriber,
  Transport,
  TransportError,
  type TransportLimits,
  defaultTransportLimits,
} from "./Transport.ts"

// A process must be able to exit with messages still queued (zeromq.js
// defaults to waiting for them forever).
zmq.context.blocky = false

type Frames = ReadonlyArray<Uint8Array | string>

const errnoOf = (e: unknown): string | undefined => (e as { code?: string } | undefined)?.code

const ioError = (what: string) => (cause: unknown) =>
  new TransportError({ reason: errnoOf(cause) === "EAGAIN" ? "Timeout" : errnoOf(cause) === "EBADF" || errnoOf(cause) === "ETERM" ? "Closed" : "Io", message: `${what}: ${(cause as Error)?.message ?? String(cause)}` })

/** A socket that is closed when its scope closes. */
const scopedSocket = <S extends zmq.Socket>(make: () => S): Effect.Effect<S, never, Scope.Scope> =>
  Effect.acquireRelease(Effect.sync(make), (s) => Effect.sync(() => { if (!s.closed) s.close() }))

const bind = (socket: zmq.Socket, endpoint: string) =>
  Effect.tryPromise({
    // A CURVE socket binds only once this process's ZAP handler is there to vet its connections.
    try: async () => {
      if (socket.curveServer && zapBound !== undefined) await zapBound
      return socket.bind(endpoint)
    },
    catch: ioError(`bind ${endpoint}`),
  })

const connect = (socket: zmq.Socket, endpoint: string) =>
  Effect.try({ try: () => socket.connect(endpoint), catch: ioError(`connect ${endpoint}`) })

/**
 * The single writer of a socket (zeromq.js rejects a second pending send):
 * a bounded queue in front of one fiber that sends in order.
 */
const writer = (socket: zmq.Writable, capacity: number, name: string) =>
  Effect.gen(function* () {
    const queue = yield* Queue.bounded<Frames>(capacity)
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.flatMap(Queue.take(queue), (frames) =>
          Effect.tryPromise({ try: () => socket.send(frames as Array<Uint8Array>), catch: ioError(`send on ${name}`) }).pipe(
            // A reply to a client that has gone away is not an error of ours.
            Effect.catch((e) => Effect.logDebug(e.message)),
          )),
      ),
    )
    return (frames: Frames) => Queue.offer(queue, frames).pipe(Effect.asVoid)
  })

/**
 * The ZAP handler (ZeroMQ RFC 27) of this process: every CURVE socket that
 * binds asks it about each connection, and it admits only the cluster's key.
 * Without it a CURVE server would take any client that knows its public key
 * (which is public). One per process, bound before the first CURVE socket.
 */
const zapAllowed = new Set<string>()
let zapBound: Promise<void> | undefined
const ensureZap = (publicKey: string) => {
  zapAllowed.add(publicKey)
  if (zapBound !== undefined) return
  const zap = new zmq.Reply({ linger: 0 })
  zapBound = zap.bind("inproc://zeromq.zap.01")
  void zapBound.then(async () => {
    for await (const [version, requestId, , , , mechanism, key] of zap) {
      const client = key === undefined || key.length !== 32 ? "" : z85(key)
      const ok = mechanism?.toString() === "CURVE" && zapAllowed.has(client)
      try {
        // No user id in the reply: with one, zmq_proxy (the broker's and the proxy's device) fails with EAGAIN
        // on the first message from that peer (seen with libzmq in zeromq 6.8).
        await zap.send([version ?? "1.0", requestId ?? "", ok ? "200" : "400", ok ? "OK" : "not the cluster's key", "", ""])
      } catch {
        // The handler must never stop: a refused reply only delays that one connection.
      }
    }
  })
}

/** CURVE options for a cluster link (none in open mode, or for a client-facing link). */
const curve = (security: Security, options: LinkOptions | undefined, side: "bind" | "connect") => {
  if (security.mode !== "curve" || options?.cluster !== true) return {}
  const k = security.key
  if (side === "bind") {
    ensureZap(k.publicKey)
    // A domain, enforced: with no ZAP handler answering, a connection is refused rather than let in.
    return { curveServer: true, curvePublicKey: k.publicKey, curveSecretKey: k.secretKey, zapDomain: "bulletin", zapEnforceDomain: true }
  }
  return { curveServerKey: k.publicKey, curvePublicKey: k.publicKey, curveSecretKey: k.secretKey }
}

/** ZMTP heartbeat options for a long-lived socket, and the connect timeout for dialling ones (see TransportLimits). */
const heartbeats = (limits: TransportLimits) => ({
  ...(limits.heartbeatIntervalMs > 0 ? { heartbeatInterval: limits.heartbeatIntervalMs, heartbeatTimeout: limits.heartbeatTimeoutMs, heartbeatTimeToLive: limits.heartbeatTimeoutMs } : {}),
  ...connecting(limits),
})
const connecting = (limits: TransportLimits) => (limits.connectTimeoutMs > 0 ? { connectTimeout: limits.connectTimeoutMs } : {})

const requester = (limits: TransportLimits, security: Security) => (endpoint: string, link?: LinkOptions) =>
  Effect.gen(function* () {
    // Lazy Pirate: after a timeout a REQ socket is stuck waiting for its
    // reply, so it is closed, and a fresh one is connected only when the
    // next request comes. Not at once: a socket left connecting to a peer
    // that is gone for good (a server scaled away, its name no longer
    // resolving) retries for ever, and each retry resolves the name again
    // inside ZeroMQ's I/O thread, which every other socket of the process
    // shares (seen on Swarm: heartbeats to the reference timed out for
    // minutes after two servers were scaled away).
    let socket: zmq.Request | undefined
    const fresh = () => {
      socket?.close()
      socket = new zmq.Request({ linger: 0, sendTimeout: 0, sendHighWaterMark: limits.highWaterMarkMessages, receiveHighWaterMark: limits.highWaterMarkMessages, maxMessageSize: Limits.transportFrameBytesMax, ...connecting(limits), ...curve(security, link, "connect") })
      socket.connect(endpoint)
      return socket
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => socket?.close()))
    const lock = yield* Semaphore.make(1)
    let waiting = 0
    const request = (frame: Uint8Array, timeoutMs = limits.requestTimeoutMs) =>
      Effect.suspend(() => {
        if (waiting >= limits.requestQueueMessages) return Effect.fail(new TransportError({ reason: "Overloaded", message: `request to ${endpoint}: ${waiting} requests already waiting` }))
        waiting += 1
        return lock.withPermits(1)(
        Effect.tryPromise({
          try: async () => {
            const s = socket !== undefined && !socket.closed ? socket : fresh()
            s.receiveTimeout = timeoutMs
            await s.send(frame)
            const [reply] = await s.receive()
            if (reply === undefined) throw new Error("empty reply")
            return new Uint8Array(reply.buffer, reply.byteOffset, reply.byteLength)
          },
          catch: (cause) => {
            socket?.close()
            socket = undefined
            const e = ioError(`request to ${endpoint}`)(cause)
            return e.reason === "Timeout" ? new TransportError({ reason: "Timeout", message: `no reply from ${endpoint} within ${timeoutMs} ms` }) : e
          },
        }),
        ).pipe(Effect.ensuring(Effect.sync(() => void (waiting -= 1))))
      })
    return { request } satisfies Requester
  })

/** Splits a routed message into its return envelope and its body (the last frame). */
const splitEnvelope = (frames: Array<Buffer>): { envelope: Array<Buffer>; body: Buffer } | undefined => {
  const body = frames[frames.length - 1]
  if (body === undefined) return undefined
  return { envelope: frames.slice(0, -1), body }
}

const replier = (limits: TransportLimits, security: Security) => (endpoint: string, mode: "connect" | "bind", link?: LinkOptions) =>
  Effect.gen(function* () {
    const opts = { linger: 500, sendHighWaterMark: limits.highWaterMarkMessages, receiveHighWaterMark: limits.highWaterMarkMessages, maxMessageSize: Limits.transportFrameBytesMax, ...heartbeats(limits), ...curve(security, link, mode) }
    // A DEALER towards the broker lets one server pipeline many requests (a REP
    // would serialise them); a ROUTER when peers connect to us.
    const socket: zmq.Dealer | zmq.Router = yield* scopedSocket(() => (mode === "connect" ? new zmq.Dealer(opts) : new zmq.Router({ ...opts, mandatory: false })))
    if (mode === "connect") yield* connect(socket, endpoint)
    else yield* bind(socket, endpoint)
    const send = yield* writer(socket, limits.sendQueueMessages, `replier ${endpoint}`)
    const requests = yield* Queue.bounded<IncomingRequest>(limits.replierQueueMessages)
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.gen(function* () {
          const frames = yield* Effect.tryPromise({ try: () => socket.receive(), catch: ioError(`receive on ${endpoint}`) })
          const split = splitEnvelope(frames)
          if (split === undefined) return
          const { envelope, body } = split
          yield* Queue.offer(requests, {
            frame: new Uint8Array(body.buffer, body.byteOffset, body.byteLength),
            reply: (frame) => send([...envelope, frame]),
          })
        }),
      ).pipe(Effect.catch((e) => (e.reason === "Closed" ? Effect.void : Effect.fail(e)))),
    )
    return { requests } satisfies Replier
  })

const publisher = (limits: TransportLimits, security: Security) => (endpoint: string, link?: LinkOptions) =>
  Effect.gen(function* () {
    const socket = yield* scopedSocket(() => new zmq.Publisher({ linger: 500, noDrop: true, sendHighWaterMark: limits.highWaterMarkMessages, ...heartbeats(limits), ...curve(security, link, "connect") }))
    yield* connect(socket, endpoint)
    // Publishing never blocks the caller: when the way to the proxy stays
    // full (or the proxy is down) the queue fills and new publications are
    // dropped and counted. The durable history, not the live feed, is the record.
    const queue = yield* Queue.dropping<Publication>(limits.sendQueueMessages)
    let dropped = 0
    // With noDrop a full pipe rejects with EAGAIN instead of silently
    // dropping; we retry for publishRetryMs, then drop and count.
    const sendOne = (p: Publication) =>
      Effect.tryPromise({ try: () => socket.send([p.topic, p.payload]), catch: ioError(`publish on ${endpoint}`) }).pipe(
        Effect.retry({ while: (e) => e.reason === "Timeout", schedule: retrySchedule(limits.publishRetryMs) }),
        Effect.catch((e) => Effect.sync(() => { dropped += 1 }).pipe(Effect.andThen(Effect.logWarning(`publication dropped: ${e.message}`)))),
      )
    yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(queue), sendOne)))
    return {
      publish: (topic: string, payload: Uint8Array) =>
        Effect.map(Queue.offer(queue, { topic, payload }), (accepted) => { if (!accepted) dropped += 1 }),
      dropped: () => dropped,
    } satisfies Publisher
  })

const retrySchedule = (totalMs: number) => Schedule.spaced("5 millis").pipe(Schedule.upTo({ duration: `${totalMs} millis` }))

const subscriber = (limits: TransportLimits, security: Security) => (endpoint: string, initialTopics: ReadonlyArray<string>, link?: LinkOptions) =>
  Effect.gen(function* () {
    const socket = yield* scopedSocket(() => new zmq.Subscriber({ linger: 0, receiveHighWaterMark: limits.highWaterMarkMessages, maxMessageSize: Limits.transportFrameBytesMax, ...heartbeats(limits), ...curve(security, link, "connect") }))
    const topics = new Set<string>()
    const subscribe = (topic: string) => Effect.sync(() => { if (!topics.has(topic)) { topics.add(topic); socket.subscribe(topic) } })
    const unsubscribe = (topic: string) => Effect.sync(() => { if (topics.delete(topic)) socket.unsubscribe(topic) })
    for (const t of initialTopics) yield* subscribe(t)
    yield* connect(socket, endpoint)
    const messages = yield* Queue.sliding<Publication>(limits.subscriberQueueMessages)
    let dropped = 0
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.gen(function* () {
          const [topicFrame, payload] = yield* Effect.tryPromise({ try: () => socket.receive(), catch: ioError(`receive on ${endpoint}`) })
          if (topicFrame === undefined || payload === undefined) return
          const topic = topicFrame.toString("utf8")
          // ZeroMQ filters by prefix: 'ana' would also get 'anabela'. Exact match here.
          if (!topics.has(topic)) return
          if ((yield* Queue.size(messages)) >= limits.subscriberQueueMessages) dropped += 1
          yield* Queue.offer(messages, { topic, payload: new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength) })
        }),
      ).pipe(Effect.catch((e) => (e.reason === "Closed" ? Effect.void : Effect.fail(e)))),
    )
    return { messages, subscribe, unsubscribe, dropped: () => dropped } satisfies Subscriber
  })

/**
 * zmq_proxy in a worker thread: about twice a JavaScript forwarding loop.
 * The sockets are made when the effect runs, so a supervised restart gets
 * fresh ones (binding the closed ones of the last run failed with ENOTSOCK
 * for ever).
 */
const device = <F extends zmq.Socket, B extends zmq.Socket>(name: string, front: () => F, frontAt: string, back: () => B, backAt: string) =>
  Effect.gen(function* () {
    const f = yield* scopedSocket(front)
    const b = yield* scopedSocket(back)
    yield* bind(f, frontAt)
    yield* bind(b, backAt)
    const proxy = new zmq.Proxy(f, b)
    yield* Effect.logInfo(`${name}: ${frontAt} <-> ${backAt}`)
    return yield* Effect.callback<never, TransportError>((resume) => {
      proxy.run().then(
        () => resume(Effect.fail(new TransportError({ reason: "Closed", message: `${name} stopped` }))),
        (e) => resume(Effect.fail(ioError(name)(e))),
      )
      return Effect.sync(() => { try { proxy.terminate() } catch { /* already stopped */ } })
    })
  })

const broker = (limits: TransportLimits, security: Security) => (front: string, back: string) => {
  // Heartbeats on both sides: a server cut off stops getting requests once its
  // connection times out, instead of swallowing a share of them for minutes.
  const opts = { linger: 0, sendHighWaterMark: limits.highWaterMarkMessages, receiveHighWaterMark: limits.highWaterMarkMessages, maxMessageSize: Limits.transportFrameBytesMax, ...heartbeats(limits) }
  // Clients at the front (plain, the standard); only cluster servers at the back.
  return device("broker", () => new zmq.Router(opts), front, () => new zmq.Dealer({ ...opts, ...curve(security, { cluster: true }, "bind") }), back)
}

const proxy = (limits: TransportLimits, security: Security) => (front: string, back: string) =>
  device(
    "proxy",
    // Only cluster servers publish; anyone may subscribe.
    () => new zmq.XSubscriber({ linger: 0, receiveHighWaterMark: limits.highWaterMarkMessages * 10, maxMessageSize: Limits.transportFrameBytesMax, ...heartbeats(limits), ...curve(security, { cluster: true }, "bind") }),
    front,
    // A slow subscriber loses its own excess (XPUB drops at its HWM); it never stalls the others.
    () => new zmq.XPublisher({ linger: 0, sendHighWaterMark: limits.highWaterMarkMessages * 10, ...heartbeats(limits) }),
    back,
  )

export const makeZmq = (limits: TransportLimits = defaultTransportLimits, security: Security = openSecurity) =>
  Transport.of({
    limits,
    secured: security.mode === "curve",
    requester: requester(limits, security),
    replier: replier(limits, security),
    publisher: publisher(limits, security),
    subscriber: subscriber(limits, security),
    broker: broker(limits, security),
    proxy: proxy(limits, security),
  })

export const layerZmq = (limits: TransportLimits = defaultTransportLimits, security: Security = openSecurity) => Layer.succeed(Transport, makeZmq(limits, security))
