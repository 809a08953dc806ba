import { type Actor, type InspectionEvent, createActor } from "xstate"
import { stateName } from "./monitor.ts"
import { guarded } from "./guarded.ts"
import type { LamportClock } from "../machines/lamport.ts"
import { replicationMachine } from "../machines/replication.ts"
import { encode } from "../protocol/codec.ts"
import { Limits } from "../protocol/limits.ts"
import { decodeEnvelope, encodeEnvelope, errorReply } from "../protocol/messages.ts"
import { type Op, type OpInput, decodeOp } from "../protocol/ops.ts"
import { decodeReplicate } from "../protocol/replication.ts"
import type { CoordinationNet, XClock } from "./coordination.ts"

/**
 * A server's replication layer: numbers and publishes its own ops, applies
 * everyone else's (live, from the `replication` topic), notices gaps, and
 * pulls what it missed from peers (the replication machine decides whom and
 * when). Like the coordination node it does no I/O and reads no clock: the
 * server gives it ZeroMQ and LMDB, the simulator a simulated network and the
 * memory store.
 */
export interface ReplicationConfig {
  readonly name: string
  readonly syncIntervalMs: number
  readonly syncTimeoutMs: number
  readonly catchUpTimeoutMs: number
  readonly startupTimeoutMs: number
  /** Encoded ops in one catch-up reply. */
  readonly replyBytesMax: number
}

export const defaultReplicationConfig = (name: string): ReplicationConfig => ({
  name,
  syncIntervalMs: 2_000,
  syncTimeoutMs: 1_500,
  catchUpTimeoutMs: 10_000,
  startupTimeoutMs: 3_000,
  replyBytesMax: Limits.replicateReplyBytesMax,
})

/** What the node needs of the Store: synchronous reads, a durable batch apply. */
export interface ReplicationStore {
  readonly vector: () => ReadonlyMap<string, number>
  readonly origins: () => ReadonlyArray<string>
  readonly lastSeq: (origin: string) => number
  readonly opsAfter: (origin: string, afterSeq: number, limit: number) => ReadonlyArray<Op>
  /** The seq of the origin's last stored post on a channel (0: none); without it, posts carry no `prev`. */
  readonly lastPost?: (origin: string, channel: string) => number
  /**
   * Makes the ops durable (idempotently); `done` once they are, with an
   * error if not. `committed`, if the store reports it, first: the batch can
   * no longer fail and is durable before anything applied after it (see
   * OrderedKv.write); a store that never calls it is waited for to `done`.
   */
  readonly apply: (ops: ReadonlyArray<Op>, done: (error?: unknown) => void, committed?: () => void) => void
}

/** The Store's synchronous reads, as the node wants them (each host adds its own `apply`). */
export const storeReads = (store: Omit<ReplicationStore, "apply">): Omit<ReplicationStore, "apply"> => ({
  vector: store.vector,
  origins: store.origins,
  lastSeq: store.lastSeq,
  opsAfter: store.opsAfter,
  ...(store.lastPost === undefined ? {} : { lastPost: store.lastPost }),
})

export type ReplicationTrace =
  /** `failedPulls`: pulls of this catch-up that got no usable answer (a catch-up whose every pull failed caught up with nothing). */
  | { readonly kind: "caughtUp"; readonly caughtUp: boolean; readonly ops: number; readonly ms: number; readonly peers: number; readonly failedPulls: number }
  | { readonly kind: "catchingUp" }
  | { readonly kind: "pulled"; readonly peer: string; readonly ops: number; readonly more: boolean }
  | { readonly kind: "gap"; readonly origin: string; readonly have: number; readonly saw: number }
  | { readonly kind: "error"; readonly where: string; readonly message: string }
  /** Live replication lag (apply time minus the origin's commit timestamp, both Berkeley-synced), per `lagSampleOps` ops. */
  | { readonly kind: "lag"; readonly ops: number; readonly p50Ms: number; readonly p99Ms: number; readonly maxMs: number }

export interface ReplicationEnv {
  readonly net: CoordinationNet
  readonly clock: XClock
  readonly lamport: LamportClock
  /** The adjusted physical time (ms) that stamps ops and messages. */
  readonly now: () => number
  /** Raw monotonic time for measuring durations. */
  readonly elapsedNow: () => number
  readonly store: ReplicationStore
  readonly trace?: (event: ReplicationTrace) => void
  /** An xstate `inspect` observer for the replication machine (monitoring, the inspector). */
  readonly inspect?: (machine: string) => ((e: InspectionEvent) => void) | undefined
}

export const replicationTopic = "replication"

/**
 * A replication frame's ops, by an upper bound of their encoded size (no
 * encoding twice): below `frameBytesMax`, so a frame's decoder and the
 * subscriber queues keep today's bounds.
 */
const replicationFrameBytesMax = 48 * 1024
/** A frame from a peer is read for at most this many ops (ours carry at most ownBatchMax). */
const replicationFrameOpsMax = 1024
/** An op's encoded size, bounded from above: fields and names well under 256 bytes, text at most 3 bytes per UTF-16 unit. */
const opBytesBound = (op: Op) => 320 + 3 * (op.kind === "publish" || op.kind === "message" ? op.message.length : op.kind === "account" ? op.salt.length + op.hash.length : 0)

/** A catch-up reply reads at most this many ops of one origin (then says `more`), besides the byte budget. */
export const opsPerOriginMax = 4096

/** Own ops written in one batch at most. */
const ownBatchMax = 256
/** Own batches committed and waiting for their flush at once (the pipeline's depth). */
const ownBatchesInFlightMax = 4

/** Live ops per replication-lag report. */
const lagSampleOps = 200
/** Lag samples kept between two monitoring reports. */
const recentLagsMax = 4_096

/** The q-quantile of ascending `sorted` (not empty). */
const quantile = (sorted: ReadonlyArray<number>, q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!

export class ReplicationNode {
  readonly config: ReplicationConfig
  readonly #env: ReplicationEnv
  #actor: Actor<typeof replicationMachine> | undefined
  #stopped = false
  #ready = false
  #everReady = false
  readonly #waiters: Array<() => void> = []
  readonly #addrs = new Map<string, string>()
  #seq: number
  readonly #lags: Array<number> = []
  /** Catch-up measurements: ops pulled since the last `catchingUp`. */
  #pulledOps = 0
  #failedPulls = 0
  #catchUpStarted = 0
  /** The run of pulls in progress: per origin, the highest seq this peer has sent in it. */
  #cursor: { readonly peer: string; readonly sent: Map<string, number> } | undefined
  /** The last pull's peer had more: the next pull from it continues the run. */
  #continuing = false

  constructor(config: ReplicationConfig, env: ReplicationEnv) {
    this.config = config
    this.#env = env
    this.#seq = env.store.lastSeq(config.name)
  }

  /** History (and the first requests) may be served: caught up, or gave up waiting. */
  get ready(): boolean {
    return this.#ready
  }

  /** Calls back once the node is ready (at once if it is). */
  whenReady(f: () => void): void {
    if (this.#ready) f()
    else this.#waiters.push(f)
  }

  get state(): string {
    const v = this.#actor?.getSnapshot().value
    return v === undefined ? "stopped" : stateName(v)
  }

  start(): void {
    const c = this.config
    const actor = createActor(replicationMachine, {
      clock: this.#env.clock,
      id: `${this.config.name}/replication`, inspect: this.#env.inspect?.("replication"),
      input: { self: c.name, syncIntervalMs: c.syncIntervalMs, syncTimeoutMs: c.syncTimeoutMs, catchUpTimeoutMs: c.catchUpTimeoutMs, startupTimeoutMs: c.startupTimeoutMs },
    })
    this.#actor = actor
    actor.on("pull", this.#guarded("pull", (e) => this.#pull(e.peer)))
    actor.on("catchingUp", this.#guarded("catchingUp", () => {
      this.#ready = false
      this.#pulledOps = 0
      this.#failedPulls = 0
      this.#catchUpStarted = this.#env.elapsedNow()
      this.#env.trace?.({ kind: "catchingUp" })
    }))
    actor.on("ready", this.#guarded("ready", (e) => {
      this.#ready = true
      this.#everReady = true
      this.#env.trace?.({ kind: "caughtUp", caughtUp: e.caughtUp, ops: this.#pulledOps, ms: this.#env.elapsedNow() - this.#catchUpStarted, peers: actor.getSnapshot().context.peers.length, failedPulls: this.#failedPulls })
      for (const w of this.#waiters.splice(0)) w()
    }))
    actor.subscribe({ error: (e) => this.#env.trace?.({ kind: "error", where: "replication machine", message: String(e) }) })
    this.#catchUpStarted = this.#env.elapsedNow()
    actor.start()
  }

  stop(): void {
    this.#stopped = true
    this.#actor?.stop()
  }

  /** The live peers and their endpoints (from the reference's list, via the coordination layer). */
  setPeers(peers: ReadonlyArray<{ readonly name: string; readonly addr: string | undefined }>): void {
    for (const p of peers) if (p.addr !== undefined) this.#addrs.set(p.name, p.addr)
    this.#actor?.send({ type: "PEERS", peers: peers.filter((p) => p.name !== this.config.name).map((p) => p.name) })
  }

  /** A client saw writes of these origins that are not here yet: pull now (as for a gap). */
  want(origins: ReadonlyArray<string>): void {
    for (const origin of origins) this.#actor?.send({ type: "GAP", origin })
  }

  /** This server lost the cluster for a while (the reference was unreachable) and is back. */
  rejoined(): void {
    this.#actor?.send({ type: "REJOINED" })
  }

  /**
   * A new op of this server: the next sequence number, durable before
   * `done`, then published to the others. Own ops are written in batches, in
   * order: every op that arrives while a batch is being committed goes into
   * the next one, and numbers are given when a batch is issued. The next
   * batch is issued once the one before is committed (it can no longer fail,
   * and the disk makes batches durable in commit order), without waiting
   * for its flush: so flushes overlap the next batch's work, a failed write
   * consumes no sequence number (its ops are refused and the next batch
   * reuses their numbers: nothing was issued after it), and no op of ours
   * can be durable while an earlier one is not (no hole in our own
   * sequence, ever).
   */
  commit(input: OpInput, done: (error: unknown, op?: Op) => void): void {
    if (this.#stopped) return done(new Error("replication stopped: the server is shutting down"))
    this.#own.push({ input, done })
    this.#writeOwn()
  }

  /** Own ops waiting for the batch being written (for the monitoring channel and tests). */
  get ownPending(): number {
    return this.#own.length
  }

  readonly #own: Array<{ readonly input: OpInput; readonly done: (error: unknown, op?: Op) => void }> = []
  /** A batch is being committed: the next one waits (its numbers follow this one's). */
  #ownCommitting = false
  /** Batches committed and not yet durable (bounded: `ownBatchesInFlightMax`). */
  #ownFlushing = 0
  /** Our last post per channel in batches committed and not yet durable (their `prev` for the next ones). */
  readonly #ownLastPosts = new Map<string, number>()

  #writeOwn() {
    if (this.#ownCommitting || this.#ownFlushing >= ownBatchesInFlightMax || this.#own.length === 0 || this.#stopped) return
    const batch = this.#own.splice(0, ownBatchMax)
    let seq = Math.max(this.#seq, this.#env.store.lastSeq(this.config.name))
    // Each post's `prev`: the seq of our previous post on its channel (earlier in this batch, in flight, or stored).
    const prevs = new Map<string, number>()
    const ops = batch.map(({ input }) => {
      const op = { ...input, origin: this.config.name, seq: (seq += 1) } as Op
      const lastPost = this.#env.store.lastPost
      if (op.kind !== "publish" || lastPost === undefined) return op
      const prev = prevs.get(op.channel) ?? this.#ownLastPosts.get(op.channel) ?? lastPost(this.config.name, op.channel)
      prevs.set(op.channel, op.seq)
      return { ...op, prev }
    })
    this.#ownCommitting = true
    let committed = false
    const stopped = () => new Error("replication stopped: the server is shutting down")
    this.#env.store.apply(
      ops,
      (error) => {
        if (!committed) this.#ownCommitting = false
        else this.#ownFlushing -= 1
        if (this.#stopped) {
          for (const { done } of [...batch, ...this.#own.splice(0)]) done(stopped())
          return
        }
        if (error === undefined) {
          // Without a commit stage (a store that only reports durability): the numbers are taken now.
          if (!committed) this.#seq = seq
          for (const [channel, s] of prevs) if (this.#ownLastPosts.get(channel) === s) this.#ownLastPosts.delete(channel)
          this.publish(ops)
        } else if (committed) {
          // A committed batch that did not become durable: every batch after it is in doubt too.
          this.#env.trace?.({ kind: "error", where: "own write", message: `a committed batch failed to flush: ${String(error)}` })
        }
        for (const [i, { done }] of batch.entries()) {
          if (error === undefined) done(undefined, ops[i])
          else done(error)
        }
        this.#writeOwn()
      },
      () => {
        // Committed: it will be durable before anything issued after it, so the next batch may go.
        committed = true
        this.#ownCommitting = false
        this.#ownFlushing += 1
        this.#seq = seq
        for (const [channel, s] of prevs) this.#ownLastPosts.set(channel, s)
        this.#writeOwn()
      },
    )
  }

  /**
   * Publishes a durable batch of our ops on the replication topic: one frame
   * for the batch, in seq order (so one origin's order holds on the wire by
   * construction), cut into several only past `replicationFrameBytesMax`.
   */
  publish(ops: ReadonlyArray<Op>): void {
    let frameOps: Array<Op> = []
    let bytes = 0
    const flush = () => {
      if (frameOps.length === 0) return
      const frame = encodeEnvelope("replication", { ops: frameOps }, { clock: this.#env.lamport.tick(), timestampMs: Math.floor(this.#env.now()) })
      frameOps = []
      bytes = 0
      try {
        this.#env.net.publish(replicationTopic, frame)
      } catch (error) {
        this.#env.trace?.({ kind: "error", where: "publish", message: String(error) })
      }
    }
    for (const op of ops) {
      const size = opBytesBound(op)
      if (bytes + size > replicationFrameBytesMax) flush()
      frameOps.push(op)
      bytes += size
    }
    flush()
  }

  /** Live ops from the `replication` topic (several frames at once: one durable batch). */
  handlePublications(frames: ReadonlyArray<Uint8Array>, done?: () => void): void {
    const ops: Array<Op> = []
    for (const frame of frames) {
      const env = decodeEnvelope(frame)
      if (!env.ok) continue
      this.#env.lamport.observe(env.envelope.meta.clock)
      // A batch (`ops`), or one op (`op`: servers before batching).
      const data = env.envelope.data as { op?: unknown; ops?: unknown }
      const raw = Array.isArray(data.ops) ? data.ops.slice(0, replicationFrameOpsMax) : [data.op]
      for (const u of raw) {
        // Our own ops come back through the proxy: skipped before the schema (the costly part of decoding).
        if ((u as { origin?: unknown } | null)?.origin === this.config.name) continue
        const op = decodeOp(u)
        if (op === undefined || op.origin === this.config.name) continue
        this.#env.lamport.observe(op.clock)
        ops.push(op)
      }
    }
    if (ops.length === 0) return done?.()
    this.#apply(ops, () => {
      this.#recordLag(ops)
      this.#checkGaps(ops)
      done?.()
    })
  }

  /** A `replicate` request on the peer port: our ops past the asker's vector, within the reply budget. */
  handlePeerRequest(frame: Uint8Array): Uint8Array {
    const decoded = decodeReplicate(frame)
    this.#env.lamport.observe(decoded.meta?.clock)
    const stamp = () => ({ clock: this.#env.lamport.tick(), timestampMs: Math.floor(this.#env.now()) })
    if (!decoded.ok) return errorReply("replicate", decoded.description, stamp())
    const theirs = decoded.value.vector
    const ops: Array<Op> = []
    let bytes = 0
    let more = false
    const store = this.#env.store
    for (const origin of store.origins()) {
      // Own keys only: an origin named "constructor" must not read Object.prototype.
      const after = Object.hasOwn(theirs, origin) ? theirs[origin]! : 0
      if (store.lastSeq(origin) <= after || more) continue
      const batch = store.opsAfter(origin, after, opsPerOriginMax)
      for (const op of batch) {
        const size = encode(op).byteLength
        if (bytes + size > this.config.replyBytesMax && ops.length > 0) {
          more = true
          break
        }
        ops.push(op)
        bytes += size
      }
      if (batch.length === opsPerOriginMax) more = true
    }
    return encodeEnvelope("replicate", { ops, more }, stamp())
  }

  #pull(peer: string) {
    const addr = this.#addrs.get(peer)
    if (addr === undefined) return this.#actor?.send({ type: "PULL_FAILED", peer })
    // Continuing a run of pulls from this peer (it said `more`): ask past what
    // it already sent, not only past our vector, or a gap the peer cannot
    // fill either would make it send the same first page for ever.
    if (this.#cursor?.peer !== peer || !this.#continuing) this.#cursor = { peer, sent: new Map() }
    this.#continuing = false
    const cursor = this.#cursor
    const vector: Record<string, number> = Object.fromEntries(this.#env.store.vector())
    for (const [origin, seq] of cursor.sent) if (seq > (vector[origin] ?? 0)) vector[origin] = seq
    const frame = encodeEnvelope("replicate", { vector }, { clock: this.#env.lamport.tick(), timestampMs: Math.floor(this.#env.now()) })
    const failed = () => {
      this.#failedPulls += 1
      this.#actor?.send({ type: "PULL_FAILED", peer })
    }
    try {
      this.#env.net.request(addr, frame, this.config.syncTimeoutMs, "replicate", (reply) => {
        if (this.#stopped) return
        const env = reply === undefined ? undefined : decodeEnvelope(reply, Limits.clusterFrameBytesMax)
        if (env === undefined || !env.ok || env.envelope.data.status === "erro") return failed()
        this.#env.lamport.observe(env.envelope.meta.clock)
        const raw = env.envelope.data.ops
        const ops = (Array.isArray(raw) ? raw : []).map(decodeOp).filter((o): o is Op => o !== undefined)
        for (const op of ops) this.#env.lamport.observe(op.clock)
        const more = env.envelope.data.more === true
        for (const op of ops) cursor.sent.set(op.origin, Math.max(cursor.sent.get(op.origin) ?? 0, op.seq))
        const report = () => {
          this.#continuing = more
          this.#pulledOps += ops.length
          this.#env.trace?.({ kind: "pulled", peer, ops: ops.length, more })
          this.#actor?.send({ type: "PULLED", peer, more })
        }
        if (ops.length === 0) return report()
        this.#apply(ops, report, failed)
      })
    } catch (error) {
      this.#env.trace?.({ kind: "error", where: `pull from ${peer}`, message: String(error) })
      failed()
    }
  }

  #apply(ops: ReadonlyArray<Op>, then: () => void, failed?: () => void) {
    this.#env.store.apply(ops, (error) => {
      if (this.#stopped) return
      if (error !== undefined) {
        this.#env.trace?.({ kind: "error", where: "store", message: String(error) })
        return failed?.()
      }
      // Our own ops from a previous life (a lost disk): never reuse their numbers.
      const own = ops.reduce((m, op) => (op.origin === this.config.name ? Math.max(m, op.seq) : m), 0)
      if (own > this.#seq) this.#seq = own
      then()
    })
  }

  #recordLag(ops: ReadonlyArray<Op>) {
    const now = this.#env.now()
    for (const op of ops) {
      const lag = Math.max(0, now - op.timestamp)
      this.#lags.push(lag)
      if (this.#recentLags.length < recentLagsMax) this.#recentLags.push(lag)
    }
    if (this.#lags.length < lagSampleOps) return
    const sorted = this.#lags.splice(0).sort((a, b) => a - b)
    this.#env.trace?.({ kind: "lag", ops: sorted.length, p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99), maxMs: sorted.at(-1)! })
  }

  readonly #gapReported = new Map<string, number>()
  #recentLags: Array<number> = []

  /** Lag of the live ops applied since the last call (at most the first `recentLagsMax`), for the monitoring channel. */
  drainLag(): { readonly ops: number; readonly p50Ms: number; readonly p99Ms: number } | undefined {
    if (this.#recentLags.length === 0) return undefined
    const sorted = this.#recentLags.sort((a, b) => a - b)
    this.#recentLags = []
    return { ops: sorted.length, p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99) }
  }

  #checkGaps(ops: ReadonlyArray<Op>) {
    const vector = this.#env.store.vector()
    const seen = new Map<string, number>()
    for (const op of ops) seen.set(op.origin, Math.max(seen.get(op.origin) ?? 0, op.seq))
    for (const [origin, saw] of seen) {
      const have = vector.get(origin) ?? 0
      if (have < saw) {
        // Reported once per hole (while a pull fills it, every live op still lands past it).
        if (this.#gapReported.get(origin) !== have) this.#env.trace?.({ kind: "gap", origin, have, saw })
        this.#gapReported.set(origin, have)
        this.#actor?.send({ type: "GAP", origin })
      }
    }
  }

  /** Intent listeners never throw out of the node (see guarded.ts). */
  #guarded<E>(where: string, handler: (e: E) => void): (e: E) => void {
    return guarded((w, message) => this.#env.trace?.({ kind: "error", where: w, message }), where, handler)
  }

  /** Ready at least once since start: the server may take requests. */
  get started(): boolean {
    return this.#everReady
  }
}
