import { Effect, Layer, Queue, Schedule, Semaphore, type Scope } from "effect"
import * as zmq from "zeromq"
import { Limits } from "../protocol/limits.ts"
import {
  type IncomingRequest,
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
  Effect.tryPromise({ try: () => socket.bind(endpoint), catch: ioError(`bind ${endpoint}`) })

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

/** ZMTP heartbeat options for a long-lived socket, and the connect timeout for dialling ones (see TransportLimits). */
const heartbeats = (limits: TransportLimits) => ({
  ...(limits.heartbeatIntervalMs > 0 ? { heartbeatInterval: limits.heartbeatIntervalMs, heartbeatTimeout: limits.heartbeatTimeoutMs, heartbeatTimeToLive: limits.heartbeatTimeoutMs } : {}),
  ...connecting(limits),
})
const connecting = (limits: TransportLimits) => (limits.connectTimeoutMs > 0 ? { connectTimeout: limits.connectTimeoutMs } : {})

const requester = (limits: TransportLimits) => (endpoint: string) =>
  Effect.gen(function* () {
    // Lazy Pirate: after a timeout a REQ socket is stuck waiting for its
    // reply, so it is closed and a fresh one connected for the next request.
    let socket: zmq.Request | undefined
    const fresh = () => {
      socket?.close()
      socket = new zmq.Request({ linger: 0, sendTimeout: 0, sendHighWaterMark: limits.highWaterMarkMessages, receiveHighWaterMark: limits.highWaterMarkMessages, maxMessageSize: Limits.transportFrameBytesMax, ...connecting(limits) })
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
            fresh()
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

const replier = (limits: TransportLimits) => (endpoint: string, mode: "connect" | "bind") =>
  Effect.gen(function* () {
    const opts = { linger: 500, sendHighWaterMark: limits.highWaterMarkMessages, receiveHighWaterMark: limits.highWaterMarkMessages, maxMessageSize: Limits.transportFrameBytesMax, ...heartbeats(limits) }
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

const publisher = (limits: TransportLimits) => (endpoint: string) =>
  Effect.gen(function* () {
    const socket = yield* scopedSocket(() => new zmq.Publisher({ linger: 500, noDrop: true, sendHighWaterMark: limits.highWaterMarkMessages, ...heartbeats(limits) }))
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

const subscriber = (limits: TransportLimits) => (endpoint: string, initialTopics: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const socket = yield* scopedSocket(() => new zmq.Subscriber({ linger: 0, receiveHighWaterMark: limits.highWaterMarkMessages, maxMessageSize: Limits.transportFrameBytesMax, ...heartbeats(limits) }))
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

/** zmq_proxy in a worker thread: about twice a JavaScript forwarding loop. */
const device = <F extends zmq.Socket, B extends zmq.Socket>(name: string, front: F, frontAt: string, back: B, backAt: string) =>
  Effect.gen(function* () {
    const f = yield* scopedSocket(() => front)
    const b = yield* scopedSocket(() => back)
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

const broker = (limits: TransportLimits) => (front: string, back: string) => {
  // Heartbeats on both sides: a server cut off stops getting requests once its
  // connection times out, instead of swallowing a share of them for minutes.
  const opts = { linger: 0, sendHighWaterMark: limits.highWaterMarkMessages, receiveHighWaterMark: limits.highWaterMarkMessages, maxMessageSize: Limits.transportFrameBytesMax, ...heartbeats(limits) }
  return device("broker", new zmq.Router(opts), front, new zmq.Dealer(opts), back)
}

const proxy = (limits: TransportLimits) => (front: string, back: string) =>
  device(
    "proxy",
    new zmq.XSubscriber({ linger: 0, receiveHighWaterMark: limits.highWaterMarkMessages * 10, maxMessageSize: Limits.transportFrameBytesMax, ...heartbeats(limits) }),
    front,
    // A slow subscriber loses its own excess (XPUB drops at its HWM); it never stalls the others.
    new zmq.XPublisher({ linger: 0, sendHighWaterMark: limits.highWaterMarkMessages * 10, ...heartbeats(limits) }),
    back,
  )

export const makeZmq = (limits: TransportLimits = defaultTransportLimits) =>
  Transport.of({
    limits,
    requester: requester(limits),
    replier: replier(limits),
    publisher: publisher(limits),
    subscriber: subscriber(limits),
    broker: broker(limits),
    proxy: proxy(limits),
  })

export const layerZmq = (limits: TransportLimits = defaultTransportLimits) => Layer.succeed(Transport, makeZmq(limits))
