import { type Actor, type InspectionEvent, createActor } from "xstate"
import { stateName } from "./monitor.ts"
import { describeError, guarded } from "./guarded.ts"
import { type BerkeleyEmitted, berkeleyMachine } from "../machines/berkeley.ts"
import { type BullyEmitted, type Coordinator, type Peer, bullyMachine } from "../machines/bully.ts"
import { heartbeatMachine } from "../machines/heartbeat.ts"
import type { LamportClock } from "../machines/lamport.ts"
import { SlewingClock, type SlewingClockOptions, defaultSlewing } from "../machines/slewingClock.ts"
import { type Term, compareTerms, termZero } from "../machines/term.ts"
import { coordinatorTopic, decodeAnnouncement, decodeList, decodePeerRequest } from "../protocol/coordination.ts"
import { Limits } from "../protocol/limits.ts"
import { decodeEnvelope, encodeEnvelope, errorReply } from "../protocol/messages.ts"

/**
 * The coordination layer of one server: registration and heartbeats with the
 * reference, the Bully election, the coordinator failure detector, Berkeley
 * rounds and the slewing clock. It hosts the pure machines and turns their
 * intents into requests and publications on a `CoordinationNet`, and replies
 * and requests back into events.
 *
 * It does no I/O itself and reads no clock: the server actor gives it a net
 * over ZeroMQ and the OS clock; the simulator gives it a simulated net and
 * simulated clocks. So the simulator runs this very code, not a copy.
 */
export interface CoordinationConfig {
  readonly name: string
  /** This server's peer endpoint (REP), advertised to the others through the reference. */
  readonly addr: string | undefined
  /** The reference's endpoint. */
  readonly reference: string
  /** Reference heartbeats and list refreshes; coordinator pings. */
  readonly heartbeatIntervalMs: number
  /** Missed heartbeat intervals in a row before the target is declared down. */
  readonly livenessMax: number
  /** Timeout of every request to the reference or a peer. */
  readonly requestTimeoutMs: number
  /** Wait before asking the reference for a rank again after a failure. */
  readonly registerRetryMs: number
  readonly electionTimeoutMs: number
  readonly coordinatorTimeoutMs: number
  readonly announceIntervalMs: number
  /**
   * A new coordinator's first announcement is sent again after each of these
   * delays (same term, only while it still leads with it): a PUB socket drops
   * what it cannot send, and right after a heal or a restart its connection
   * to the proxy may still be coming up, which otherwise costs the followers
   * a whole `announceIntervalMs`.
   */
  readonly announceRepeatsMs: ReadonlyArray<number>
  readonly startupTimeoutMs: number
  readonly roundIntervalMs: number
  readonly pollTimeoutMs: number
  readonly roundSpacingMs: number
  /** Clocks further than this from the median do not vote in a Berkeley round. */
  readonly toleranceMs: number
  /** Samples with a longer round trip do not vote. */
  readonly rttMaxMs: number
  /** The standard's "sync every 10 messages". */
  readonly syncEveryMessages: number
  readonly slewing: SlewingClockOptions
}

export const defaultCoordinationConfig = (name: string, reference: string, addr: string | undefined): CoordinationConfig => ({
  name,
  addr,
  reference,
  heartbeatIntervalMs: 1_000,
  livenessMax: 3,
  requestTimeoutMs: 800,
  registerRetryMs: 1_000,
  electionTimeoutMs: 1_000,
  coordinatorTimeoutMs: 3_000,
  announceIntervalMs: 2_000,
  announceRepeatsMs: [250, 1_000],
  startupTimeoutMs: 3_000,
  roundIntervalMs: 5_000,
  pollTimeoutMs: 800,
  roundSpacingMs: 1_000,
  toleranceMs: 1_000,
  rttMaxMs: 400,
  syncEveryMessages: 10,
  slewing: defaultSlewing,
})

/** Requests and publications, as bytes. Every request gets exactly one `done`: the reply, or undefined (timeout, error, unreachable). */
export interface CoordinationNet {
  /** `lane` separates independent request streams to one endpoint (a REQ socket carries one request at a time). */
  readonly request: (to: string, frame: Uint8Array, timeoutMs: number, lane: string, done: (reply: Uint8Array | undefined) => void) => void
  readonly publish: (topic: string, frame: Uint8Array) => void
}

export type TraceEvent =
  | { readonly kind: "send"; readonly to: string; readonly service: string; readonly clock: number }
  | { readonly kind: "receive"; readonly service: string; readonly clock: number | undefined }
  | { readonly kind: "rank"; readonly rank: number }
  | { readonly kind: "reference"; readonly up: boolean }
  | { readonly kind: "coordinator"; readonly coordinator: string | undefined; readonly term: Term | undefined; readonly self: boolean }
  | { readonly kind: "coordinatorDown"; readonly coordinator: string }
  | { readonly kind: "state"; readonly machine: "bully" | "berkeley"; readonly value: string }
  | { readonly kind: "round"; readonly round: number; readonly used: number; readonly dropped: number }
  | { readonly kind: "adjust"; readonly offsetMs: number; readonly from: string }
  | { readonly kind: "stamp"; readonly timeMs: number }
  /** A bug caught at the boundary: an intent handler threw, or a machine failed (and was restarted). */
  | { readonly kind: "error"; readonly where: string; readonly message: string }

/** XState's clock interface (not exported by xstate): what drives every `after` delay. */
export interface XClock {
  setTimeout(fn: (...args: Array<any>) => void, timeout: number): any
  clearTimeout(id: any): void
}

export interface CoordinationEnv {
  readonly net: CoordinationNet
  /** The raw physical clock (ms): the OS clock, or a skewed simulated one. */
  readonly rawNow: () => number
  /** Timers for the machines' delays and the node's retries. */
  readonly clock: XClock
  /** The process's Lamport clock (shared with the rest of the server). */
  readonly lamport: LamportClock
  readonly trace?: (event: TraceEvent) => void
  /** Every fresh list of live servers from the reference (the replication layer pulls from them). */
  readonly peersChanged?: (peers: ReadonlyArray<{ readonly name: string; readonly rank: number; readonly addr: string | undefined }>) => void
  /** The reference is reachable again after this server lost it: it was probably cut off. */
  readonly rejoined?: () => void
  /** An xstate `inspect` observer for each machine this node runs, by name (monitoring, the inspector). */
  readonly inspect?: (machine: string) => ((e: InspectionEvent) => void) | undefined
}

export interface CoordinationSnapshot {
  readonly name: string
  readonly rank: number | undefined
  readonly bully: string
  readonly berkeley: string
  readonly coordinator: Coordinator | undefined
  readonly term: Term
  readonly referenceUp: boolean
  readonly peers: ReadonlyArray<Peer>
  readonly offsetMs: number
}


const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)
const isCount = (u: unknown): u is number => typeof u === "number" && Number.isSafeInteger(u) && u >= 0
const termOf = (u: unknown): Term | undefined =>
  isRecord(u) && isCount(u.epoch) && isCount(u.rank) && u.epoch <= Limits.termEpochMax && u.rank <= Limits.rankMax ? { epoch: u.epoch, rank: u.rank } : undefined

type Machines = {
  readonly rank: number
  readonly bully: Actor<typeof bullyMachine>
  readonly berkeley: Actor<typeof berkeleyMachine>
  readonly referenceBeat: Actor<typeof heartbeatMachine>
  coordinatorBeat: Actor<typeof heartbeatMachine> | undefined
}

export class CoordinationNode {
  readonly config: CoordinationConfig
  readonly #env: CoordinationEnv
  readonly clock: SlewingClock
  #machines: Machines | undefined
  #stopped = false
  #registering = false
  #referenceUp = false
  /** Live peers, from the reference's last list (without us). */
  #peers: ReadonlyArray<Peer> = []
  /** Every peer address ever heard of: a peer that drops off the list may still answer. */
  readonly #addrs = new Map<string, string>()
  readonly #ranks = new Map<string, number>()
  #handled = 0
  /** The reference was lost at least once (so reaching it again means rejoining). */
  #referenceLost = false
  /** The last Berkeley offset applied (coordinator, term, round): a duplicate is not applied twice. */
  #lastAdjust: string | undefined

  constructor(config: CoordinationConfig, env: CoordinationEnv) {
    this.config = config
    this.#env = env
    this.clock = new SlewingClock(config.slewing)
  }

  /** The adjusted physical time: what stamps every message this server sends. */
  now(): number {
    return this.clock.now(this.#env.rawNow())
  }

  /** Adjusted time for a raw reading taken by the caller (the server's Effect clock). */
  adjusted(raw: number): number {
    return this.clock.now(raw)
  }

  start(): void {
    this.#register()
  }

  stop(): void {
    this.#stopped = true
    this.#stopMachines()
  }

  snapshot(): CoordinationSnapshot {
    const m = this.#machines
    const bully = m?.bully.getSnapshot()
    return {
      name: this.config.name,
      rank: m?.rank,
      bully: bully === undefined ? "unregistered" : stateName(bully.value),
      berkeley: m === undefined ? "inactive" : stateName(m.berkeley.getSnapshot().value),
      coordinator: bully?.context.coordinator,
      term: bully?.context.term ?? termZero,
      referenceUp: this.#referenceUp,
      peers: this.#peers,
      offsetMs: this.clock.offsetMs,
    }
  }

  get coordinator(): Coordinator | undefined {
    return this.#machines?.bully.getSnapshot().context.coordinator
  }

  get isCoordinator(): boolean {
    return this.coordinator?.name === this.config.name
  }

  // --- outgoing -------------------------------------------------------------

  #stamp() {
    // Whole milliseconds on the wire (the slewed clock has fractions); floor keeps it monotonic.
    const timestampMs = Math.floor(this.now())
    this.#env.trace?.({ kind: "stamp", timeMs: timestampMs })
    return { clock: this.#env.lamport.tick(), timestampMs }
  }

  #request(to: string, service: string, data: Record<string, unknown>, lane: string, timeoutMs: number, done: (reply: Record<string, unknown> | undefined) => void) {
    const stamp = this.#stamp()
    this.#env.trace?.({ kind: "send", to, service, clock: stamp.clock })
    const frame = encodeEnvelope(service, data, stamp)
    const onReply = (frame: Uint8Array | undefined) => {
      if (this.#stopped) return
      if (frame === undefined) return done(undefined)
      const env = decodeEnvelope(frame)
      if (!env.ok) return done(undefined)
      this.#env.lamport.observe(env.envelope.meta.clock)
      this.#env.trace?.({ kind: "receive", service: env.envelope.service, clock: env.envelope.meta.clock })
      const data = env.envelope.data
      done(data.status === "erro" ? { ...data, failed: true } : data)
    }
    try {
      this.#env.net.request(to, frame, timeoutMs, lane, onReply)
    } catch (error) {
      // A host bug: report it, and let the request time out like a lost one (retries keep their pace).
      this.#env.trace?.({ kind: "error", where: `request ${service} to ${to}`, message: error instanceof Error ? error.message : String(error) })
      this.#later(timeoutMs, () => onReply(undefined))
    }
  }

  #publish(topic: string, service: string, data: Record<string, unknown>) {
    const stamp = this.#stamp()
    this.#env.trace?.({ kind: "send", to: topic, service, clock: stamp.clock })
    try {
      this.#env.net.publish(topic, encodeEnvelope(service, data, stamp))
    } catch (error) {
      this.#env.trace?.({ kind: "error", where: `publish ${service} on ${topic}`, message: error instanceof Error ? error.message : String(error) })
    }
  }

  #later(ms: number, f: () => void) {
    this.#env.clock.setTimeout(() => {
      if (!this.#stopped) f()
    }, ms)
  }

  // --- the reference ----------------------------------------------------------

  #register() {
    if (this.#stopped || this.#registering) return
    this.#registering = true
    const data: Record<string, unknown> = { user: this.config.name }
    if (this.config.addr !== undefined) data.addr = this.config.addr
    this.#request(this.config.reference, "rank", data, "reference", this.config.requestTimeoutMs, (reply) => {
      this.#registering = false
      const rank = reply?.rank
      if (reply === undefined || reply.failed === true || !isCount(rank) || rank === 0 || rank > Limits.rankMax) {
        this.#later(this.config.registerRetryMs, () => this.#register())
        return
      }
      this.#setReference(true)
      this.#env.trace?.({ kind: "rank", rank })
      if (this.#machines?.rank !== rank) {
        // First registration, or a reference that lost its ranks: start over with the rank it gives.
        this.#stopMachines()
        this.#startMachines(rank)
      }
      this.#refreshPeers()
    })
  }

  #setReference(up: boolean) {
    if (this.#referenceUp === up) return
    this.#referenceUp = up
    this.#env.trace?.({ kind: "reference", up })
    if (up && this.#referenceLost) this.#env.rejoined?.()
    if (!up) this.#referenceLost = true
  }

  #beatReference() {
    this.#request(this.config.reference, "heartbeat", { user: this.config.name }, "reference", Math.min(this.config.requestTimeoutMs, this.config.heartbeatIntervalMs), (reply) => {
      if (reply === undefined) return
      this.#machines?.referenceBeat.send({ type: "PONG" })
      // The reference forgot us (it restarted, or dropped us as dead): register again.
      if (reply.failed === true) this.#register()
      else this.#refreshPeers()
    })
  }

  #refreshPeers() {
    this.#request(this.config.reference, "list", {}, "reference", this.config.requestTimeoutMs, (reply) => {
      const list = reply === undefined ? undefined : decodeList(reply)
      if (list === undefined) return
      const peers: Array<Peer> = []
      for (const e of list) {
        this.#ranks.set(e.name, e.rank)
        if (e.addr !== undefined) this.#addrs.set(e.name, e.addr)
        if (e.name !== this.config.name) peers.push({ name: e.name, rank: e.rank })
      }
      this.#env.peersChanged?.(list.map((e) => ({ name: e.name, rank: e.rank, addr: e.addr ?? this.#addrs.get(e.name) })))
      const same = peers.length === this.#peers.length && peers.every((p, i) => p.name === this.#peers[i]?.name && p.rank === this.#peers[i]?.rank)
      this.#peers = peers
      const m = this.#machines
      if (m === undefined) return
      // The first list always goes in: it moves the election out of `starting`.
      if (!same || m.bully.getSnapshot().value === "starting") {
        // Berkeley first: the election may end at once (no higher peer), and
        // the first round must poll this list, not the empty one.
        m.berkeley.send({ type: "PEERS", peers: peers.map((p) => p.name) })
        m.bully.send({ type: "PEERS", peers })
      }
    })
  }

  // --- machines -----------------------------------------------------------------

  #startMachines(rank: number) {
    const c = this.config
    const clock = this.#env.clock
    this.#ranks.set(c.name, rank)
    const bully = createActor(bullyMachine, {
      clock,
      id: `${this.config.name}/bully`, inspect: this.#env.inspect?.("bully"),
      input: {
        self: { name: c.name, rank },
        electionTimeoutMs: c.electionTimeoutMs,
        coordinatorTimeoutMs: c.coordinatorTimeoutMs,
        announceIntervalMs: c.announceIntervalMs,
        startupTimeoutMs: c.startupTimeoutMs,
      },
    })
    const berkeley = createActor(berkeleyMachine, {
      clock,
      id: `${this.config.name}/berkeley`, inspect: this.#env.inspect?.("berkeley"),
      input: { self: c.name, roundIntervalMs: c.roundIntervalMs, pollTimeoutMs: c.pollTimeoutMs, roundSpacingMs: c.roundSpacingMs, toleranceMs: c.toleranceMs, rttMaxMs: c.rttMaxMs },
    })
    const referenceBeat = createActor(heartbeatMachine, { clock, id: `${this.config.name}/referenceHeartbeat`, inspect: this.#env.inspect?.("referenceHeartbeat"), input: { intervalMs: c.heartbeatIntervalMs, livenessMax: c.livenessMax } })
    const m: Machines = { rank, bully, berkeley, referenceBeat, coordinatorBeat: undefined }
    this.#machines = m

    referenceBeat.on("ping", this.#guarded("reference heartbeat", () => this.#beatReference()))
    referenceBeat.on("down", this.#guarded("reference heartbeat", () => this.#setReference(false)))
    referenceBeat.on("up", this.#guarded("reference heartbeat", () => this.#setReference(true)))

    bully.on("sendElection", this.#guarded("election", (e) => this.#sendElection(e)))
    let repeatedTerm: Term | undefined
    bully.on("announce", this.#guarded("election", (e) => {
      const announce = () => this.#publish(coordinatorTopic, "election", { coordinator: c.name, rank, term: e.term })
      announce()
      if (repeatedTerm !== undefined && compareTerms(repeatedTerm, e.term) === 0) return
      repeatedTerm = e.term
      for (const ms of c.announceRepeatsMs) {
        this.#later(ms, () => {
          const now = bully.getSnapshot().context
          if (this.#machines === m && now.coordinator?.name === c.name && compareTerms(now.term, e.term) === 0) announce()
        })
      }
    }))
    bully.on("coordinatorChanged", this.#guarded("election", (e) => this.#coordinatorChanged(e)))
    let bullyState = ""
    bully.subscribe({
      next: (s) => {
        const value = stateName(s.value)
        if (value !== bullyState) this.#env.trace?.({ kind: "state", machine: "bully", value: (bullyState = value) })
      },
      error: (e) => this.#machineFailed("bully", e),
    })
    berkeley.subscribe({ error: (e) => this.#machineFailed("berkeley", e) })
    referenceBeat.subscribe({ error: (e) => this.#machineFailed("reference heartbeat", e) })

    berkeley.on("poll", this.#guarded("clock sync", (e) => this.#poll(e)))
    berkeley.on("adjust", this.#guarded("clock sync", (e) => this.#adjust(e)))
    berkeley.on("roundDone", this.#guarded("clock sync", (e) => this.#env.trace?.({ kind: "round", round: e.round, used: e.used, dropped: e.dropped })))

    berkeley.start()
    bully.start()
    referenceBeat.start()
    if (this.#peers.length > 0) {
      berkeley.send({ type: "PEERS", peers: this.#peers.map((p) => p.name) })
      bully.send({ type: "PEERS", peers: this.#peers })
    }
  }

  #guarded<E>(where: string, handler: (e: E) => void): (e: E) => void {
    return guarded((w, message) => this.#env.trace?.({ kind: "error", where: w, message }), where, handler)
  }

  /** A machine that failed is a bug: report it and start all machines afresh (the election recovers by itself). */
  #machineFailed(machine: string, error: unknown) {
    this.#env.trace?.({ kind: "error", where: machine, message: describeError(error) })
    const rank = this.#machines?.rank
    if (rank === undefined || this.#stopped) return
    this.#later(0, () => {
      if (this.#machines?.rank !== rank) return
      this.#stopMachines()
      this.#startMachines(rank)
    })
  }

  #stopMachines() {
    const m = this.#machines
    if (m === undefined) return
    this.#machines = undefined
    m.coordinatorBeat?.stop()
    m.referenceBeat.stop()
    m.bully.stop()
    m.berkeley.stop()
  }

  #sendElection(e: Extract<BullyEmitted, { type: "sendElection" }>) {
    const addr = this.#addrs.get(e.to)
    const m = this.#machines
    if (addr === undefined || m === undefined) return // unreachable: the election timeout decides
    this.#request(addr, "election", { from: this.config.name, rank: m.rank, term: e.term }, "election", this.config.requestTimeoutMs, (reply) => {
      if (reply === undefined || reply.failed === true) return
      this.#machines?.bully.send({ type: "OK", from: e.to, term: termOf(reply.term) })
    })
  }

  #coordinatorChanged(e: Extract<BullyEmitted, { type: "coordinatorChanged" }>) {
    const m = this.#machines
    this.#env.trace?.({ kind: "coordinator", coordinator: e.coordinator?.name, term: e.coordinator?.term, self: e.self })
    if (m === undefined) return
    m.coordinatorBeat?.stop()
    m.coordinatorBeat = undefined
    m.berkeley.send({ type: e.self ? "LEAD" : "FOLLOW" })
    const coordinator = e.coordinator
    if (coordinator === undefined || e.self) return
    const beat = createActor(heartbeatMachine, { clock: this.#env.clock, id: `${this.config.name}/coordinatorHeartbeat`, inspect: this.#env.inspect?.("coordinatorHeartbeat"), input: { intervalMs: this.config.heartbeatIntervalMs, livenessMax: this.config.livenessMax } })
    m.coordinatorBeat = beat
    beat.subscribe({ error: (e) => this.#machineFailed("coordinator heartbeat", e) })
    beat.on("ping", this.#guarded("coordinator heartbeat", () => {
      const addr = this.#addrs.get(coordinator.name)
      if (addr === undefined) return
      this.#request(addr, "ping", { from: this.config.name, term: coordinator.term }, "ping", Math.min(this.config.requestTimeoutMs, this.config.heartbeatIntervalMs), (reply) => {
        if (reply !== undefined && m.coordinatorBeat === beat) beat.send({ type: "PONG" })
      })
    }))
    beat.on("down", this.#guarded("coordinator heartbeat", () => {
      this.#env.trace?.({ kind: "coordinatorDown", coordinator: coordinator.name })
      this.#machines?.bully.send({ type: "COORDINATOR_DOWN", name: coordinator.name })
    }))
    beat.start()
  }

  #poll(e: Extract<BerkeleyEmitted, { type: "poll" }>) {
    for (const peer of e.peers) {
      const addr = this.#addrs.get(peer)
      if (addr === undefined) continue
      const t0 = this.now()
      this.#request(addr, "clock", {}, "clock", this.config.pollTimeoutMs, (reply) => {
        const t1 = this.now()
        const time = reply?.time
        if (typeof time !== "number" || !Number.isFinite(time)) return
        this.#machines?.berkeley.send({ type: "SAMPLE", round: e.round, peer, offsetMs: time - (t0 + t1) / 2, rttMs: t1 - t0 })
      })
    }
  }

  #adjust(e: Extract<BerkeleyEmitted, { type: "adjust" }>) {
    if (e.peer === this.config.name) {
      this.#applyOffset(e.offsetMs, this.config.name)
      return
    }
    const addr = this.#addrs.get(e.peer)
    const term = this.coordinator?.term
    if (addr === undefined) return
    this.#request(addr, "clockAdjust", { offsetMs: e.offsetMs, term, round: e.round, from: this.config.name }, "clock", this.config.pollTimeoutMs, (reply) => {
      // Refused as stale: learn the newer term (a leader re-claims above it).
      const newer = termOf(reply?.term)
      if (newer !== undefined) this.#machines?.bully.send({ type: "TERM", term: newer })
    })
  }

  #applyOffset(offsetMs: number, from: string) {
    this.clock.adjust(offsetMs, this.#env.rawNow())
    this.#env.trace?.({ kind: "adjust", offsetMs, from })
  }

  // --- incoming ------------------------------------------------------------------

  /** A request on the peer port (5560): returns the reply to send. */
  handlePeerRequest(frame: Uint8Array): Uint8Array {
    const decoded = decodePeerRequest(frame)
    this.#env.lamport.observe(decoded.meta?.clock)
    this.#env.trace?.({ kind: "receive", service: decoded.ok ? decoded.value.service : (decoded.service ?? "?"), clock: decoded.meta?.clock })
    if (!decoded.ok) return errorReply(decoded.service, decoded.description, this.#stamp())
    const req = decoded.value
    const m = this.#machines
    const reply = (data: Record<string, unknown>) => encodeEnvelope(req.service, data, this.#stamp())
    switch (req.service) {
      case "election": {
        // Answer OK first (we are alive); the machine then decides whether to
        // start our own election (Bully: a lower server asked, we take over).
        const out = reply({ election: "OK", from: this.config.name, rank: m?.rank, term: m?.bully.getSnapshot().context.term })
        const rank = req.rank ?? (req.from === undefined ? undefined : this.#ranks.get(req.from)) ?? 0
        m?.bully.send({ type: "ELECTION", from: req.from ?? "?", rank, term: req.term })
        return out
      }
      case "clock":
        // Integer ms on the wire, like every timestamp (a fraction would go out as a float64).
        return reply({ time: Math.floor(this.now()) })
      case "clockAdjust": {
        // Only the coordinator we follow, or one with a newer term, may move our clock.
        const current = this.coordinator
        if (current !== undefined && req.from !== current.name && req.term !== undefined && compareTerms(req.term, current.term) < 0) {
          const data = { status: "erro", description: `stale coordinator: term ${req.term.epoch}/${req.term.rank}, we follow ${current.name} at ${current.term.epoch}/${current.term.rank}`, term: current.term }
          return encodeEnvelope("clockAdjust", data, this.#stamp())
        }
        const key = req.round === undefined ? undefined : `${req.from}/${req.term?.epoch}/${req.term?.rank}/${req.round}`
        if (key === undefined || key !== this.#lastAdjust) this.#applyOffset(req.offsetMs, req.from ?? "?")
        this.#lastAdjust = key
        return reply({ status: "OK" })
      }
      case "ping":
        // The pinger follows us under some term: if we restarted and forgot it, we re-claim above it.
        if (req.term !== undefined) m?.bully.send({ type: "TERM", term: req.term })
        return reply({ status: "OK", coordinator: this.coordinator?.name, term: this.coordinator?.term })
      case "sync":
        m?.berkeley.send({ type: "SYNC_NOW" })
        return reply({ status: "OK" })
    }
  }

  /** A publication on topic `servers`. */
  handleAnnouncement(frame: Uint8Array): void {
    const env = decodeEnvelope(frame)
    if (!env.ok) return
    this.#env.lamport.observe(env.envelope.meta.clock)
    this.#env.trace?.({ kind: "receive", service: env.envelope.service, clock: env.envelope.meta.clock })
    if (env.envelope.service !== "election") return
    const a = decodeAnnouncement(env.envelope.data)
    const m = this.#machines
    if (a === undefined || m === undefined) return
    // A standard peer announces only its name: its rank comes from the reference's list.
    const rank = a.rank ?? this.#ranks.get(a.coordinator)
    if (rank === undefined) return
    m.bully.send({ type: "ANNOUNCE", coordinator: a.coordinator, rank, term: a.term ?? { epoch: 0, rank } })
  }

  /** A client request was handled: every `syncEveryMessages`, a Berkeley round (the standard's rule). */
  messageHandled(): void {
    this.#handled += 1
    if (this.#handled % this.config.syncEveryMessages !== 0) return
    const m = this.#machines
    const coordinator = this.coordinator
    if (m === undefined || coordinator === undefined) return
    if (coordinator.name === this.config.name) {
      m.berkeley.send({ type: "SYNC_NOW" })
      return
    }
    const addr = this.#addrs.get(coordinator.name)
    if (addr !== undefined) this.#request(addr, "sync", { from: this.config.name }, "sync", this.config.requestTimeoutMs, () => {})
  }
}
