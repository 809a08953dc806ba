import { Context, Data, type Effect, type Queue, type Scope } from "effect"

/**
 * The Transport service: everything the roles need from a network, as bytes.
 *
 * Actors depend on this interface only, never on zeromq, so the simulator can
 * provide a seeded in-memory network (`layerSimulated`, next to `layerZmq`)
 * without touching them. Endpoints are opaque strings: `tcp://host:port` for
 * ZeroMQ, node names for the simulator.
 *
 * Every socket lives in the Scope it was acquired in: closing the scope ends
 * its loops and releases it.
 */
export class TransportError extends Data.TaggedError("TransportError")<{
  readonly reason: "Timeout" | "Closed" | "Overloaded" | "Io"
  readonly message: string
}> {}

export interface TransportLimits {
  /** How long a requester waits for a reply before it gives up (and reconnects). */
  readonly requestTimeoutMs: number
  /** ZeroMQ high-water marks (messages) on every socket. */
  readonly highWaterMarkMessages: number
  /** Requests waiting to be handled by a replier before it stops reading. */
  readonly replierQueueMessages: number
  /**
   * Requests waiting for a requester (it carries one at a time); past this
   * many a new one fails at once (Overloaded) instead of queueing for ever
   * behind a peer that does not answer.
   */
  readonly requestQueueMessages: number
  /** Outgoing messages waiting for a socket's single writer. */
  readonly sendQueueMessages: number
  /** Publications received but not yet consumed; past this the oldest are dropped (and counted). */
  readonly subscriberQueueMessages: number
  /** How long a publisher retries a full queue before it drops a publication (and counts it). */
  readonly publishRetryMs: number
  /**
   * ZMTP heartbeats on every long-lived connection: a PING every interval, and
   * a connection that answers nothing for the timeout is closed (and, on the
   * connecting side, dialled again). Without them a peer cut off by the
   * network keeps its TCP connection "open" for many minutes: the broker
   * would keep handing it a share of the requests, and a healed peer would
   * wait for TCP's retransmission back-off. 0 turns them off.
   */
  readonly heartbeatIntervalMs: number
  readonly heartbeatTimeoutMs: number
  /**
   * A connection attempt that has not completed after this long is given up
   * and dialled again (ZMQ_CONNECT_TIMEOUT). Without it, a dial made while
   * the peer is unreachable waits on the kernel's SYN retransmission
   * back-off (1, 2, 4... s), so a healed link could stay unused for seconds.
   * 0: the kernel's own timeout.
   */
  readonly connectTimeoutMs: number
}

export const defaultTransportLimits: TransportLimits = {
  requestTimeoutMs: 2_000,
  highWaterMarkMessages: 10_000,
  replierQueueMessages: 1_024,
  requestQueueMessages: 64,
  sendQueueMessages: 4_096,
  subscriberQueueMessages: 10_000,
  publishRetryMs: 1_000,
  heartbeatIntervalMs: 1_000,
  heartbeatTimeoutMs: 3_000,
  connectTimeoutMs: 500,
}

/** A request/reply client: one request at a time, Lazy Pirate reconnect after a timeout. */
export interface Requester {
  readonly request: (frame: Uint8Array, timeoutMs?: number) => Effect.Effect<Uint8Array, TransportError>
}

/** One request received by a replier, with the way back to its sender. */
export interface IncomingRequest {
  readonly frame: Uint8Array
  readonly reply: (frame: Uint8Array) => Effect.Effect<void>
}

export interface Replier {
  readonly requests: Queue.Dequeue<IncomingRequest>
}

export interface Publisher {
  readonly publish: (topic: string, payload: Uint8Array) => Effect.Effect<void>
  /** Publications dropped because the way to the proxy stayed full. */
  readonly dropped: () => number
}

export interface Publication {
  readonly topic: string
  readonly payload: Uint8Array
}

export interface Subscriber {
  /** Only publications whose topic is exactly one of the subscribed topics (ZeroMQ matches prefixes). */
  readonly messages: Queue.Dequeue<Publication>
  readonly subscribe: (topic: string) => Effect.Effect<void>
  readonly unsubscribe: (topic: string) => Effect.Effect<void>
  readonly dropped: () => number
}

/**
 * `cluster: true` marks a link between cluster roles (a server's links to the
 * reference, its peers, the broker's back end and the proxy's publishing
 * side, and the sides that bind them): authenticated and encrypted when the
 * layer has a cluster key. Client-facing links stay plain.
 */
export interface LinkOptions {
  readonly cluster?: boolean
}

export type TransportShape = Transport["Service"]

export class Transport extends Context.Service<
  Transport,
  {
    readonly limits: TransportLimits
    /** Whether cluster links are authenticated (CURVE) or open. */
    readonly secured: boolean
    /** Client side of request/reply (REQ semantics). */
    readonly requester: (endpoint: string, options?: LinkOptions) => Effect.Effect<Requester, TransportError, Scope.Scope>
    /** Server side: `connect` to a broker's back end, or `bind` for peers. */
    readonly replier: (endpoint: string, mode: "connect" | "bind", options?: LinkOptions) => Effect.Effect<Replier, TransportError, Scope.Scope>
    readonly publisher: (endpoint: string, options?: LinkOptions) => Effect.Effect<Publisher, TransportError, Scope.Scope>
    readonly subscriber: (endpoint: string, topics: ReadonlyArray<string>, options?: LinkOptions) => Effect.Effect<Subscriber, TransportError, Scope.Scope>
    /** The broker: clients' requests at `front`, spread round-robin over the servers connected at `back` (a cluster link). Runs until interrupted. */
    readonly broker: (front: string, back: string) => Effect.Effect<never, TransportError, Scope.Scope>
    /** The publication proxy: publishers at `front` (servers: a cluster link), subscribers at `back`. Runs until interrupted. */
    readonly proxy: (front: string, back: string) => Effect.Effect<never, TransportError, Scope.Scope>
  }
>()("bulletin/Transport") {}
