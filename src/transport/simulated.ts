import { Effect, Layer, Queue, Semaphore, type Scope } from "effect"
import { Limits } from "../protocol/limits.ts"
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
  type TransportShape,
  defaultTransportLimits,
} from "./Transport.ts"

/**
 * The simulated network: the Transport service (`layerSimulated`, beside
 * `layerZmq`, same interface) over connections that behave like ZeroMQ over
 * TCP, driven by the simulator's clock and PRNG so that a seed replays a run.
 *
 * - A connection is FIFO in each direction: every message takes a delay drawn
 *   from the link's range, but never overtakes the one before it.
 * - A dial takes a round trip; a refused one (nobody bound there) is tried
 *   again after `reconnectMs`, one into a partition after `connectTimeoutMs`.
 * - A partition stalls the connections across it (TCP retransmits: nothing
 *   is lost while it lasts); one that lasts past the ZMTP heartbeat timeout
 *   drops them, losing everything in flight, and the dialling side dials
 *   again once the link heals. A crashed host's connections close; the other
 *   side hears of it one delay later (or at the heartbeat timeout, if a
 *   partition swallows the FIN).
 * - The broker hands each request to the next *connected* server whose pipe
 *   is below the high-water mark (ZeroMQ's DEALER round-robin), holding
 *   requests while none is; replies go back by route.
 * - The proxy keeps every subscriber's subscriptions (they travel up the
 *   connection, so a late subscriber misses what was published before they
 *   arrive) and forwards their union to the publishers, which drop what no
 *   one subscribed to; it drops at a subscriber's high-water mark.
 * - A requester carries one request at a time and, after a timeout, drops its
 *   socket for a fresh one (Lazy Pirate); a late reply is lost with it.
 * - A replier reads into a bounded inbox; while its queue is full the pipes
 *   towards it stall (backpressure), as a ZeroMQ socket stops reading.
 *
 * Real sockets do not drop, duplicate or reorder messages on a connection;
 * those stay available as harsher faults (`dropRate`, `duplicateRate`,
 * `reorderRate`, per message), off by default.
 */
export interface SimTimers {
  readonly now: () => number
  readonly after: (ms: number, fn: () => void) => unknown
  readonly cancel: (timer: unknown) => void
}

export interface LinkParams {
  readonly delayMinMs: number
  readonly delayMaxMs: number
  readonly dropRate: number
  readonly duplicateRate: number
  readonly reorderRate: number
}

export const cleanLink: LinkParams = { delayMinMs: 1, delayMaxMs: 5, dropRate: 0, duplicateRate: 0, reorderRate: 0 }

/** What the simulator may watch on the wire (its checkers). */
export interface NetworkTap {
  /** A replier on `host` answered `request` with `reply`. */
  readonly replied?: (host: string, request: Uint8Array, reply: Uint8Array) => void
  /** A publisher on `host` published (before the network: whether anyone subscribed or not). */
  readonly published?: (host: string, topic: string, payload: Uint8Array) => void
}

/** The largest each bounded queue ever held, beside its limit: the simulator asserts one never passes the other. */
export interface QueueHighs {
  readonly name: string
  readonly high: number
  readonly limit: number
}

type Msg =
  | { readonly k: "req"; readonly frame: Uint8Array }
  | { readonly k: "rep"; readonly frame: Uint8Array }
  | { readonly k: "fwd"; readonly route: number; readonly frame: Uint8Array }
  | { readonly k: "pub"; readonly topic: string; readonly payload: Uint8Array }
  | { readonly k: "sub"; readonly topic: string; readonly on: boolean }

const bytesOf = (m: Msg) => (m.k === "pub" ? m.payload.byteLength : m.k === "sub" ? m.topic.length : m.frame.byteLength)

const hostOf = (endpoint: string): string => {
  // tcp://host:port, or ZeroMQ's tcp://source:0;host:port
  const target = endpoint.includes(";") ? `tcp://${endpoint.slice(endpoint.indexOf(";") + 1)}` : endpoint
  const m = /^[a-z]+:\/\/(.+):(\d+|\*)$/.exec(target)
  if (m === null) throw new Error(`not an endpoint: '${endpoint}'`)
  return m[1]!
}
const targetOf = (endpoint: string) => (endpoint.includes(";") ? `tcp://${endpoint.slice(endpoint.indexOf(";") + 1)}` : endpoint)

/** One incarnation of a host: a crash ends it, a restart makes a new one. */
class SimHost {
  alive = true
  readonly sockets = new Set<Sock>()
  /** The cluster key, if this host holds it (a cluster role). */
  constructor(
    readonly name: string,
    readonly key: string | undefined,
  ) {}
}

class Pipe {
  readonly q: Array<{ readonly msg: Msg; at: number }> = []
  #timer: unknown
  #timerAt = Number.POSITIVE_INFINITY
  #lastAt = 0
  /** The receiver had no room: waiting for it to read. */
  waitingForRoom = false
  readonly #name: string
  constructor(
    readonly net: SimNetwork,
    readonly conn: Conn,
    readonly from: string,
    readonly to: string,
    readonly receiver: () => Sock,
  ) {
    this.#name = `pipe ${from}->${to}`
  }

  send(msg: Msg): void {
    const net = this.net
    // The harsh faults are for the messages our protocols carry; ZeroMQ's own
    // subscription frames are not subjected to them (no socket could recover).
    const p = msg.k === "sub" ? cleanLink : net.params
    if (p.dropRate > 0 && net.random() < p.dropRate) {
      net.count("harsh drops")
      return
    }
    const copies = p.duplicateRate > 0 && net.random() < p.duplicateRate ? 2 : 1
    for (let i = 0; i < copies; i++) {
      let at = net.timers.now() + net.delay()
      if (!(p.reorderRate > 0 && net.random() < p.reorderRate)) at = Math.max(at, this.#lastAt)
      this.#lastAt = Math.max(this.#lastAt, at)
      let j = this.q.length
      while (j > 0 && this.q[j - 1]!.at > at) j--
      this.q.splice(j, 0, { msg, at })
    }
    net.high(this.#name, this.q.length, net.limits.highWaterMarkMessages * 10)
    this.schedule()
  }

  schedule(): void {
    if (this.conn.state !== "open" || this.q.length === 0 || this.waitingForRoom) return
    const head = this.q[0]!.at
    if (this.#timer !== undefined && this.#timerAt <= head) return
    if (this.#timer !== undefined) this.net.timers.cancel(this.#timer)
    this.#timerAt = head
    this.#timer = this.net.timers.after(head - this.net.timers.now(), () => this.pump())
  }

  pump(): void {
    this.#timer = undefined
    this.#timerAt = Number.POSITIVE_INFINITY
    this.waitingForRoom = false
    const net = this.net
    while (this.conn.state === "open" && this.q.length > 0 && this.q[0]!.at <= net.timers.now()) {
      if (net.blocked(this.from, this.to)) {
        net.stalled.add(this)
        return
      }
      const sock = this.receiver()
      const { msg } = this.q[0]!
      if (sock.closed) {
        this.q.shift()
        continue
      }
      if (bytesOf(msg) > Limits.transportFrameBytesMax) {
        // ZeroMQ's maxMessageSize: the receiver drops the connection.
        net.count("oversized frames")
        this.conn.drop()
        return
      }
      if (!sock.receive(this.conn, msg)) {
        this.waitingForRoom = true
        sock.stalled.add(this)
        return
      }
      this.q.shift()
    }
    this.schedule()
  }

  /** After a partition heals: what waited goes on, each message one fresh delay later, in order. */
  resume(): void {
    const now = this.net.timers.now()
    let last = now
    for (const m of this.q) {
      m.at = Math.max(last, now + this.net.delay())
      last = m.at
    }
    this.#lastAt = last
    this.schedule()
  }

  clear(): void {
    this.q.length = 0
    if (this.#timer !== undefined) this.net.timers.cancel(this.#timer)
    this.#timer = undefined
    this.#timerAt = Number.POSITIVE_INFINITY
  }
}

let connIds = 0

class Conn {
  readonly id = ++connIds
  state: "connecting" | "open" | "closed" = "connecting"
  readonly up: Pipe
  readonly down: Pipe
  blockedSince: number | undefined
  /** Broker routes of requests that came in on this connection. */
  readonly routes = new Set<number>()
  constructor(
    readonly net: SimNetwork,
    readonly dialer: DialSock,
    readonly listener: ListenSock,
  ) {
    this.up = new Pipe(net, this, dialer.host.name, listener.host.name, () => this.listener)
    this.down = new Pipe(net, this, listener.host.name, dialer.host.name, () => this.dialer)
  }

  get a(): string {
    return this.dialer.host.name
  }
  get b(): string {
    return this.listener.host.name
  }

  open(): void {
    this.state = "open"
    this.net.conns.add(this)
    this.net.checkBlocked(this)
    this.listener.attach(this)
    this.dialer.attach(this)
    this.up.schedule()
    this.down.schedule()
  }

  /** Both ends learn at once (a heartbeat timeout, an oversized frame). */
  drop(): void {
    if (this.state === "closed") return
    this.state = "closed"
    this.net.conns.delete(this)
    this.up.clear()
    this.down.clear()
    this.listener.detach(this)
    this.dialer.detach(this)
  }

  /**
   * One end closed (its process died or closed the socket): nothing more is
   * delivered; the other end hears of it a delay later, or at the heartbeat
   * timeout if the link is cut.
   */
  closeFrom(side: Sock): void {
    if (this.state === "closed") return
    const wasOpen = this.state === "open"
    this.state = "closed"
    this.net.conns.delete(this)
    this.up.clear()
    this.down.clear()
    side.detach(this)
    const other: Sock = side === this.dialer ? this.listener : this.dialer
    if (!wasOpen && other === this.listener) return
    const cut = this.net.blocked(this.a, this.b) || this.net.blocked(this.b, this.a)
    this.net.timers.after(cut ? this.net.heartbeatTimeoutMs() : this.net.delay(), () => other.detach(this))
  }

  sendUp(msg: Msg): void {
    if (this.state !== "closed") this.up.send(msg)
  }
  sendDown(msg: Msg): void {
    if (this.state !== "closed") this.down.send(msg)
  }
}

abstract class Sock {
  closed = false
  /** A cluster link (CURVE when the network is secured): a dialler presents its host's key, a listener admits only the cluster's. */
  cluster = false
  /** Pipes waiting for this socket to have room again. */
  readonly stalled = new Set<Pipe>()
  constructor(
    readonly net: SimNetwork,
    readonly host: SimHost,
  ) {
    host.sockets.add(this)
    if (!host.alive) this.closed = true
  }
  /** A message arrived; false: no room now (the pipe waits for `roomAgain`). */
  abstract receive(conn: Conn, msg: Msg): boolean
  abstract attach(conn: Conn): void
  abstract detach(conn: Conn): void
  abstract close(): void
  /** A connection came up, or went away (what a socket type does about it). */
  opened(_conn: Conn): void {}
  lost(_conn: Conn): void {}
  /** Marks the socket closed; false if it already was. */
  protected shut(): boolean {
    if (this.closed) return false
    this.closed = true
    this.host.sockets.delete(this)
    return true
  }
  roomAgain(): void {
    const pipes = [...this.stalled]
    this.stalled.clear()
    for (const p of pipes) p.pump()
  }
}

/** A socket that connects to an endpoint and keeps dialling it. */
abstract class DialSock extends Sock {
  conn: Conn | undefined
  /** Messages sent before a connection is up (ZeroMQ queues them on the pipe it makes at connect). */
  readonly held: Array<Msg> = []
  #dialTimer: unknown
  constructor(
    net: SimNetwork,
    host: SimHost,
    readonly endpoint: string,
  ) {
    super(net, host)
    if (!this.closed) this.dial()
  }

  get connected(): boolean {
    return this.conn?.state === "open"
  }

  dial(): void {
    this.#dialTimer = undefined
    if (this.closed) return
    const net = this.net
    const to = hostOf(this.endpoint)
    if (net.blocked(this.host.name, to) || net.blocked(to, this.host.name)) {
      this.#redial(net.connectTimeoutMs())
      return
    }
    const rtt = net.delay() + net.delay()
    const listener = net.listeners.get(targetOf(this.endpoint))
    if (listener === undefined || listener.closed) {
      this.#redial(rtt + net.reconnectMs)
      return
    }
    const conn = new Conn(net, this, listener)
    this.conn = conn
    net.timers.after(rtt, () => {
      if (conn.state !== "connecting" || this.conn !== conn) return
      if (this.closed) return
      if (listener.closed || net.blocked(this.host.name, to) || net.blocked(to, this.host.name)) {
        conn.state = "closed"
        this.conn = undefined
        this.#redial(net.reconnectMs)
        return
      }
      // The listener's ZAP handler: a secured cluster link admits only a dialler that presents the cluster's key.
      if (net.clusterKey !== undefined && listener.cluster && !(this.cluster && this.host.key === net.clusterKey)) {
        net.count(`connections refused (not the cluster's key) at ${listener.endpoint}`)
        conn.state = "closed"
        this.conn = undefined
        this.#redial(net.reconnectMs)
        return
      }
      conn.open()
    })
  }

  #redial(ms: number) {
    if (this.#dialTimer === undefined && !this.closed) this.#dialTimer = this.net.timers.after(ms, () => this.dial())
  }

  attach(conn: Conn): void {
    if (conn !== this.conn) return
    for (const m of this.held.splice(0)) conn.sendUp(m)
    this.opened(conn)
  }

  detach(conn: Conn): void {
    if (conn !== this.conn) return
    this.conn = undefined
    this.lost(conn)
    this.#redial(this.net.reconnectMs)
  }

  /** Sends now if connected; holds it (up to the high-water mark) until the connection is up otherwise. */
  send(msg: Msg): boolean {
    if (this.closed) return false
    if (this.conn?.state === "open") {
      if (this.conn.up.q.length >= this.net.limits.highWaterMarkMessages) return false
      this.conn.sendUp(msg)
      return true
    }
    if (this.held.length >= this.net.limits.highWaterMarkMessages) return false
    this.held.push(msg)
    return true
  }

  close(): void {
    if (!this.shut()) return
    if (this.#dialTimer !== undefined) this.net.timers.cancel(this.#dialTimer)
    this.#dialTimer = undefined
    this.held.length = 0
    const conn = this.conn
    this.conn = undefined
    conn?.closeFrom(this)
  }
}

/** A socket bound to an endpoint, taking connections. */
abstract class ListenSock extends Sock {
  readonly conns = new Set<Conn>()
  constructor(
    net: SimNetwork,
    host: SimHost,
    readonly endpoint: string,
  ) {
    super(net, host)
  }
  attach(conn: Conn): void {
    if (this.closed) return
    this.conns.add(conn)
    this.opened(conn)
  }
  detach(conn: Conn): void {
    if (this.conns.delete(conn)) this.lost(conn)
  }
  close(): void {
    if (!this.shut()) return
    if (this.net.listeners.get(this.endpoint) === this) this.net.listeners.delete(this.endpoint)
    for (const c of [...this.conns]) {
      this.conns.delete(c)
      c.closeFrom(this)
    }
  }
}

/** Requests read from the wire, waiting for the role's loop (a ZeroMQ socket's receive buffer). */
class Inbox {
  readonly items: Array<IncomingRequest> = []
  #waiter: ((r: IncomingRequest) => void) | undefined
  constructor(
    readonly owner: Sock,
    readonly capacity: number,
    readonly name: string,
  ) {}
  push(r: IncomingRequest): boolean {
    if (this.#waiter !== undefined) {
      const w = this.#waiter
      this.#waiter = undefined
      w(r)
      return true
    }
    if (this.items.length >= this.capacity) return false
    this.items.push(r)
    this.owner.net.high(this.name, this.items.length, this.capacity)
    return true
  }
  /** A request read off the wire, answered through `send` (and shown to the network's tap). */
  request(frame: Uint8Array, send: (reply: Uint8Array) => void): boolean {
    return this.push({
      frame,
      reply: (reply) =>
        Effect.sync(() => {
          this.owner.net.tap?.replied?.(this.owner.host.name, frame, reply)
          send(reply)
        }),
    })
  }
  readonly take: Effect.Effect<IncomingRequest> = Effect.callback<IncomingRequest>((resume) => {
    const first = this.items.shift()
    if (first !== undefined) {
      this.owner.roomAgain()
      return resume(Effect.succeed(first))
    }
    this.#waiter = (r) => resume(Effect.succeed(r))
    return Effect.sync(() => {
      this.#waiter = undefined
    })
  })
}

class ReqSock extends DialSock {
  #awaiting: ((frame: Uint8Array) => void) | undefined
  expect(f: ((frame: Uint8Array) => void) | undefined) {
    this.#awaiting = f
  }
  receive(_conn: Conn, msg: Msg): boolean {
    if (msg.k !== "rep") return true
    const f = this.#awaiting
    this.#awaiting = undefined
    f?.(msg.frame)
    return true
  }
}

/** DEALER towards the broker: requests come with their route, replies go back with it. */
class DealerSock extends DialSock {
  readonly inbox: Inbox
  constructor(net: SimNetwork, host: SimHost, endpoint: string) {
    super(net, host, endpoint)
    this.inbox = new Inbox(this, net.limits.highWaterMarkMessages, `${host.name} requests from the broker`)
  }
  receive(_conn: Conn, msg: Msg): boolean {
    if (msg.k !== "fwd") return true
    const route = msg.route
    return this.inbox.request(msg.frame, (frame) => {
      if (!this.send({ k: "fwd", route, frame })) this.net.count("replies dropped at the high-water mark")
    })
  }
}

/** ROUTER bound for peers' REQ sockets. */
class RouterSock extends ListenSock {
  readonly inbox: Inbox
  constructor(net: SimNetwork, host: SimHost, endpoint: string) {
    super(net, host, endpoint)
    this.inbox = new Inbox(this, net.limits.highWaterMarkMessages, `${host.name} peer requests`)
  }
  receive(conn: Conn, msg: Msg): boolean {
    if (msg.k !== "req") return true
    return this.inbox.request(msg.frame, (frame) => {
      if (conn.state !== "open") return
      if (conn.down.q.length >= this.net.limits.highWaterMarkMessages) this.net.count("replies dropped at the high-water mark")
      else conn.sendDown({ k: "rep", frame })
    })
  }
}

class PubSock extends DialSock {
  /** Prefixes the proxy has subscribed to (ZeroMQ filters at the publisher). */
  readonly wanted = new Set<string>()
  dropped = 0
  receive(_conn: Conn, msg: Msg): boolean {
    if (msg.k === "sub") {
      if (msg.on) this.wanted.add(msg.topic)
      else this.wanted.delete(msg.topic)
    }
    return true
  }
  override opened(): void {
    this.wanted.clear()
  }
  override lost(): void {
    this.wanted.clear()
  }
  publish(topic: string, payload: Uint8Array): void {
    if (this.closed) return
    this.net.tap?.published?.(this.host.name, topic, payload)
    if (!this.connected) return
    let match = false
    for (const w of this.wanted) if (topic.startsWith(w)) match = true
    if (!match) return
    if (!this.send({ k: "pub", topic, payload })) this.dropped += 1
  }
}

class SubSock extends DialSock {
  readonly topics = new Set<string>()
  dropped = 0
  constructor(
    net: SimNetwork,
    host: SimHost,
    endpoint: string,
    readonly messages: Queue.Queue<Publication>,
    readonly capacity: number,
  ) {
    super(net, host, endpoint)
  }
  receive(_conn: Conn, msg: Msg): boolean {
    if (msg.k !== "pub") return true
    // ZeroMQ filters by prefix: exact match here, as in layerZmq.
    if (!this.topics.has(msg.topic)) return true
    if (Queue.sizeUnsafe(this.messages) >= this.capacity) this.dropped += 1
    Queue.offerUnsafe(this.messages, { topic: msg.topic, payload: msg.payload })
    return true
  }
  override opened(conn: Conn): void {
    for (const t of this.topics) conn.sendUp({ k: "sub", topic: t, on: true })
  }
  subscribe(topic: string): void {
    if (this.topics.has(topic)) return
    this.topics.add(topic)
    if (this.conn?.state === "open") this.conn.sendUp({ k: "sub", topic, on: true })
  }
  unsubscribe(topic: string): void {
    if (!this.topics.delete(topic)) return
    if (this.conn?.state === "open") this.conn.sendUp({ k: "sub", topic, on: false })
  }
}

/** A bound side of a device: hands what arrives to the device. */
class DeviceSock extends ListenSock {
  constructor(
    net: SimNetwork,
    host: SimHost,
    endpoint: string,
    readonly handlers: { receive: (conn: Conn, msg: Msg) => void; opened?: (conn: Conn) => void; lost?: (conn: Conn) => void },
  ) {
    super(net, host, endpoint)
  }
  receive(conn: Conn, msg: Msg): boolean {
    this.handlers.receive(conn, msg)
    return true
  }
  override opened(conn: Conn): void {
    this.handlers.opened?.(conn)
  }
  override lost(conn: Conn): void {
    this.handlers.lost?.(conn)
  }
}

export class SimNetwork {
  readonly timers: SimTimers
  readonly random: () => number
  readonly limits: TransportLimits
  params: LinkParams
  /** Wait before dialling again after a refused or lost connection (ZeroMQ's reconnect interval). */
  readonly reconnectMs: number
  tap: NetworkTap | undefined
  readonly listeners = new Map<string, ListenSock>()
  readonly conns = new Set<Conn>()
  /** Pipes stopped by a cut link, resumed when it heals. */
  readonly stalled = new Set<Pipe>()
  readonly #cut = new Set<string>()
  readonly #hosts = new Map<string, SimHost>()
  readonly #highs = new Map<string, { high: number; limit: number }>()
  readonly counters = new Map<string, number>()
  messages = 0

  /** The cluster key, when cluster links are secured (CURVE); undefined: open mode. */
  readonly clusterKey: string | undefined

  constructor(options: { timers: SimTimers; random: () => number; params?: LinkParams; limits?: TransportLimits; reconnectMs?: number; clusterKey?: string }) {
    this.clusterKey = options.clusterKey
    this.timers = options.timers
    this.random = options.random
    this.params = options.params ?? cleanLink
    this.limits = options.limits ?? defaultTransportLimits
    this.reconnectMs = options.reconnectMs ?? 100
  }

  delay(): number {
    this.messages += 1
    const { delayMinMs, delayMaxMs } = this.params
    return delayMinMs + this.random() * (delayMaxMs - delayMinMs)
  }

  heartbeatTimeoutMs(): number {
    return this.limits.heartbeatIntervalMs > 0 ? this.limits.heartbeatTimeoutMs : 30_000
  }

  connectTimeoutMs(): number {
    return this.limits.connectTimeoutMs > 0 ? this.limits.connectTimeoutMs : 2_000
  }

  count(what: string, n = 1): void {
    this.counters.set(what, (this.counters.get(what) ?? 0) + n)
  }

  high(name: string, size: number, limit: number): void {
    const h = this.#highs.get(name)
    if (h === undefined) this.#highs.set(name, { high: size, limit })
    else if (size > h.high) h.high = size
  }

  /** Every bounded queue's high mark, with its limit. */
  highs(): ReadonlyArray<QueueHighs> {
    return [...this.#highs].map(([name, h]) => ({ name, ...h }))
  }

  // --- faults -------------------------------------------------------------------

  blocked(from: string, to: string): boolean {
    return this.#cut.size > 0 && this.#cut.has(`${from}>${to}`)
  }

  /** Messages from `from` to `to` stop (the other way is untouched). */
  cut(from: string, to: string): void {
    this.#cut.add(`${from}>${to}`)
    this.#linksChanged()
  }

  heal(): void {
    this.#cut.clear()
    this.#linksChanged()
  }

  #linksChanged(): void {
    for (const c of this.conns) this.checkBlocked(c)
    const stalled = [...this.stalled]
    this.stalled.clear()
    for (const p of stalled) {
      if (p.conn.state !== "open") continue
      if (this.blocked(p.from, p.to)) this.stalled.add(p)
      else p.resume()
    }
  }

  /** A connection cut for longer than the heartbeat timeout is dropped, whatever was in flight lost. */
  checkBlocked(c: Conn): void {
    const cut = this.blocked(c.a, c.b) || this.blocked(c.b, c.a)
    if (!cut) {
      c.blockedSince = undefined
      return
    }
    if (c.blockedSince !== undefined) return
    const since = this.timers.now()
    c.blockedSince = since
    this.timers.after(this.heartbeatTimeoutMs(), () => {
      if (c.blockedSince === since && c.state === "open") {
        this.count("connections dropped by heartbeat timeout")
        c.drop()
      }
    })
  }

  // --- hosts ----------------------------------------------------------------------

  /** A new incarnation of `name` (its previous one must have crashed), holding `key` if given. */
  boot(name: string, key?: string): SimHost {
    const old = this.#hosts.get(name)
    if (old?.alive) throw new Error(`host ${name} is already up`)
    const host = new SimHost(name, key)
    this.#hosts.set(name, host)
    return host
  }

  /** The process on `name` died: its sockets close as the kernel closes them. */
  crash(name: string): void {
    const host = this.#hosts.get(name)
    if (host === undefined || !host.alive) return
    host.alive = false
    for (const s of [...host.sockets]) s.close()
  }

  isUp(name: string): boolean {
    return this.#hosts.get(name)?.alive === true
  }

  /** The Transport service of one host incarnation. */
  transport(host: SimHost): TransportShape {
    return makeSimulated(this, host)
  }
}

const closed = (what: string) => new TransportError({ reason: "Closed", message: `${what}: the host is down` })

/** A socket that is closed when its scope closes. */
const scoped = <S extends Sock>(make: () => S): Effect.Effect<S, never, Scope.Scope> =>
  Effect.acquireRelease(Effect.sync(make), (s) => Effect.sync(() => s.close()))

const bindCheck = (net: SimNetwork, host: SimHost, endpoint: string) =>
  Effect.suspend(() => {
    if (!host.alive) return Effect.fail(closed(`bind ${endpoint}`))
    if (hostOf(endpoint) !== host.name) return Effect.fail(new TransportError({ reason: "Io", message: `bind ${endpoint}: not an address of ${host.name}` }))
    if (net.listeners.has(endpoint)) return Effect.fail(new TransportError({ reason: "Io", message: `bind ${endpoint}: Address already in use` }))
    return Effect.void
  })

const bound = <S extends ListenSock>(net: SimNetwork, host: SimHost, endpoint: string, make: () => S) =>
  Effect.andThen(
    bindCheck(net, host, endpoint),
    scoped(() => {
      const s = make()
      net.listeners.set(endpoint, s)
      return s
    }),
  )

/** Moves requests from a socket's inbox to the role's bounded queue, as layerZmq's receive loop does. */
const pumpInbox = (inbox: Inbox, capacity: number) =>
  Effect.gen(function* () {
    const requests = yield* Queue.bounded<IncomingRequest>(capacity)
    const name = `${inbox.name} (queue)`
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.flatMap(inbox.take, (r) => {
          inbox.owner.net.high(name, Queue.sizeUnsafe(requests) + 1, capacity)
          return Queue.offer(requests, r)
        }),
      ),
    )
    return requests
  })

const makeSimulated = (net: SimNetwork, host: SimHost): TransportShape => {
  const limits = net.limits

  const cluster = <S extends Sock>(s: S, link: LinkOptions | undefined): S => {
    s.cluster = link?.cluster === true
    return s
  }
  const requester = (endpoint: string, link?: LinkOptions) =>
    Effect.gen(function* () {
      let socket: ReqSock | undefined
      const fresh = () => {
        socket?.close()
        socket = cluster(new ReqSock(net, host, endpoint), link)
        return socket
      }
      yield* Effect.addFinalizer(() => Effect.sync(() => socket?.close()))
      const lock = yield* Semaphore.make(1)
      let waiting = 0
      const attempt = (frame: Uint8Array, timeoutMs: number) =>
        Effect.callback<Uint8Array, TransportError>((resume) => {
          if (!host.alive) return resume(Effect.fail(closed(`request to ${endpoint}`)))
          const s = socket !== undefined && !socket.closed ? socket : fresh()
          let settled = false
          const timer = net.timers.after(timeoutMs, () => {
            if (settled) return
            settled = true
            s.expect(undefined)
            // Lazy Pirate: a REQ socket that got no reply is stuck; use a fresh one next time.
            if (socket === s) fresh()
            resume(Effect.fail(new TransportError({ reason: "Timeout", message: `no reply from ${endpoint} within ${timeoutMs} ms` })))
          })
          s.expect((reply) => {
            if (settled) return
            settled = true
            net.timers.cancel(timer)
            resume(Effect.succeed(reply))
          })
          if (!s.send({ k: "req", frame })) {
            settled = true
            net.timers.cancel(timer)
            s.expect(undefined)
            return resume(Effect.fail(new TransportError({ reason: "Overloaded", message: `request to ${endpoint}: the socket's queue is full` })))
          }
          return Effect.sync(() => {
            if (settled) return
            settled = true
            net.timers.cancel(timer)
            s.expect(undefined)
            if (socket === s) fresh()
          })
        })
      const request = (frame: Uint8Array, timeoutMs = limits.requestTimeoutMs) =>
        Effect.suspend(() => {
          if (waiting >= limits.requestQueueMessages) {
            net.count("requests refused: requester queue full")
            return Effect.fail(new TransportError({ reason: "Overloaded", message: `request to ${endpoint}: ${waiting} requests already waiting` }))
          }
          waiting += 1
          net.high(`${host.name} requests waiting for ${endpoint}`, waiting, limits.requestQueueMessages)
          return lock.withPermits(1)(attempt(frame, timeoutMs)).pipe(Effect.ensuring(Effect.sync(() => void (waiting -= 1))))
        })
      return { request } satisfies Requester
    })

  const replier = (endpoint: string, mode: "connect" | "bind", link?: LinkOptions) =>
    Effect.gen(function* () {
      if (mode === "connect") {
        if (!host.alive) return yield* Effect.fail(closed(`connect ${endpoint}`))
        const socket = yield* scoped(() => cluster(new DealerSock(net, host, endpoint), link))
        return { requests: yield* pumpInbox(socket.inbox, limits.replierQueueMessages) } satisfies Replier
      }
      const socket = yield* bound(net, host, endpoint, () => cluster(new RouterSock(net, host, endpoint), link))
      return { requests: yield* pumpInbox(socket.inbox, limits.replierQueueMessages) } satisfies Replier
    })

  const publisher = (endpoint: string, link?: LinkOptions) =>
    Effect.gen(function* () {
      if (!host.alive) return yield* Effect.fail(closed(`connect ${endpoint}`))
      const socket = yield* scoped(() => cluster(new PubSock(net, host, endpoint), link))
      return {
        publish: (topic: string, payload: Uint8Array) => Effect.sync(() => socket.publish(topic, payload)),
        dropped: () => socket.dropped,
      } satisfies Publisher
    })

  const subscriber = (endpoint: string, topics: ReadonlyArray<string>, link?: LinkOptions) =>
    Effect.gen(function* () {
      if (!host.alive) return yield* Effect.fail(closed(`connect ${endpoint}`))
      const messages = yield* Queue.sliding<Publication>(limits.subscriberQueueMessages)
      const socket = yield* scoped(() => cluster(new SubSock(net, host, endpoint, messages, limits.subscriberQueueMessages), link))
      for (const t of topics) socket.subscribe(t)
      return {
        messages,
        subscribe: (topic: string) => Effect.sync(() => socket.subscribe(topic)),
        unsubscribe: (topic: string) => Effect.sync(() => socket.unsubscribe(topic)),
        dropped: () => socket.dropped,
      } satisfies Subscriber
    })

  const broker = (front: string, back: string) =>
    Effect.gen(function* () {
      const hwm = limits.highWaterMarkMessages
      const routes = new Map<number, Conn>()
      let nextRoute = 0
      const servers: Array<Conn> = []
      let turn = 0
      const held: Array<{ route: number; frame: Uint8Array }> = []
      const forward = (m: { route: number; frame: Uint8Array }): boolean => {
        for (let i = 0; i < servers.length; i++) {
          const c = servers[(turn + i) % servers.length]!
          if (c.state !== "open" || c.down.q.length >= hwm) continue
          turn = (turn + i + 1) % servers.length
          c.sendDown({ k: "fwd", route: m.route, frame: m.frame })
          return true
        }
        return false
      }
      const flushHeld = () => {
        while (held.length > 0 && forward(held[0]!)) held.shift()
      }
      yield* bound(net, host, front, () =>
        new DeviceSock(net, host, front, {
          receive: (conn, msg) => {
            if (msg.k !== "req") return
            const route = (nextRoute += 1)
            routes.set(route, conn)
            conn.routes.add(route)
            const m = { route, frame: msg.frame }
            if (held.length > 0 || !forward(m)) {
              // No server can take it: the device stops reading its front end until one can.
              if (held.length >= hwm) net.count("requests dropped at the broker (no server)")
              else held.push(m)
              net.high("broker requests held (no server connected)", held.length, hwm)
            }
          },
          lost: (conn) => {
            for (const r of conn.routes) routes.delete(r)
          },
        }),
      )
      // Only cluster servers may take requests from the broker.
      yield* bound(net, host, back, () =>
        cluster(new DeviceSock(net, host, back, {
          receive: (_conn, msg) => {
            if (msg.k !== "fwd") return
            const client = routes.get(msg.route)
            routes.delete(msg.route)
            client?.routes.delete(msg.route)
            if (client === undefined || client.state !== "open") return
            if (client.down.q.length >= hwm) net.count("replies dropped at the broker's high-water mark")
            else client.sendDown({ k: "rep", frame: msg.frame })
            flushHeld()
          },
          opened: (conn) => {
            servers.push(conn)
            flushHeld()
          },
          lost: (conn) => {
            const i = servers.indexOf(conn)
            if (i >= 0) servers.splice(i, 1)
            if (turn >= servers.length) turn = 0
          },
        }), { cluster: true }),
      )
      return yield* Effect.never
    })

  const proxy = (front: string, back: string) =>
    Effect.gen(function* () {
      const hwm = limits.highWaterMarkMessages * 10
      const publishers = new Set<Conn>()
      const subscriptions = new Map<Conn, Set<string>>()
      const union = new Map<string, number>()
      const tellPublishers = (topic: string, on: boolean) => {
        for (const p of publishers) p.sendDown({ k: "sub", topic, on })
      }
      const subscribe = (conn: Conn, topic: string, on: boolean) => {
        let set = subscriptions.get(conn)
        if (set === undefined) subscriptions.set(conn, (set = new Set()))
        if (on === set.has(topic)) return
        if (on) set.add(topic)
        else set.delete(topic)
        const n = (union.get(topic) ?? 0) + (on ? 1 : -1)
        if (n === 0) union.delete(topic)
        else union.set(topic, n)
        if ((on && n === 1) || (!on && n === 0)) tellPublishers(topic, on)
      }
      // Only cluster servers may publish.
      yield* bound(net, host, front, () =>
        cluster(new DeviceSock(net, host, front, {
          receive: (_conn, msg) => {
            if (msg.k !== "pub") return
            for (const [conn, topics] of subscriptions) {
              if (conn.state !== "open") continue
              let match = false
              for (const t of topics) if (msg.topic.startsWith(t)) match = true
              if (!match) continue
              // A slow subscriber loses its own excess (XPUB drops at its HWM); it never stalls the others.
              if (conn.down.q.length >= hwm) net.count("publications dropped at a subscriber's high-water mark")
              else conn.sendDown(msg)
            }
          },
          opened: (conn) => {
            publishers.add(conn)
            for (const topic of union.keys()) conn.sendDown({ k: "sub", topic, on: true })
          },
          lost: (conn) => void publishers.delete(conn),
        }), { cluster: true }),
      )
      yield* bound(net, host, back, () =>
        new DeviceSock(net, host, back, {
          receive: (conn, msg) => {
            if (msg.k === "sub") subscribe(conn, msg.topic, msg.on)
          },
          lost: (conn) => {
            for (const t of [...(subscriptions.get(conn) ?? [])]) subscribe(conn, t, false)
            subscriptions.delete(conn)
          },
        }),
      )
      return yield* Effect.never
    })

  return Transport.of({ limits, secured: net.clusterKey !== undefined, requester, replier, publisher, subscriber, broker, proxy })
}

/** The Transport of one simulated host incarnation (`SimNetwork.boot`). */
export const layerSimulated = (net: SimNetwork, host: SimHost) => Layer.succeed(Transport, net.transport(host))

export type { SimHost }
