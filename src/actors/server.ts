import { Cause, Clock, Context, Deferred, Duration, Effect, FiberSet, Option, Queue, Random, type Scope, Semaphore } from "effect"
import type { InspectionEvent } from "xstate"
import { type CoordinationConfig, type CoordinationNet, CoordinationNode, type TraceEvent, type XClock, defaultCoordinationConfig } from "./coordination.ts"
import { coordinatorTopic } from "../protocol/coordination.ts"
import { type LeaseStore, leaseLamport } from "./lamportLease.ts"
import { type Credentials, claimRef, issueToken, passwordMatches, privateTopic, replicationSeal, seal, tokenValid, unseal } from "./credentials.ts"
import { type ReplicationConfig, ReplicationNode, type ReplicationTrace, defaultReplicationConfig, replicationTopic, storeReads } from "./replication.ts"
import { serviceOf } from "../protocol/replication.ts"
import { decode, encode } from "../protocol/codec.ts"
import { Limits } from "../protocol/limits.ts"
import {
  type ClientRequest,
  type Meta,
  type Post,
  type RequestOf,
  type Stamp,
  cursorOf,
  decodeEnvelope,
  decodeRequest,
  encodeEnvelope,
  okStatus,
  publicationOf,
} from "../protocol/messages.ts"
import { type Op, type OpInput, postOf } from "../protocol/ops.ts"
import { Store, StoreError, type StoreShape } from "../store/Store.ts"
import { type Publisher, type Replier, type Requester, type Subscriber, Transport } from "../transport/Transport.ts"
import { Stamper, supervised, xstateClock } from "./runtime.ts"
import { Monitor, type MonitorConfig, type MonitorReport, bothObservers, buildReport, defaultMonitorConfig, monitorTopic } from "./monitor.ts"
import { RateWindow, type RequestStatus, type ServerSample, ServerMetrics, serveMetrics, statusLabel } from "./metrics.ts"

export interface ServerConfig {
  /** Unique among servers; the origin of every op this server creates. */
  readonly name: string
  /** The broker's back end (DEALER), e.g. tcp://broker:5556. */
  readonly brokerBackend: string
  /** The proxy's publisher side (XSUB), e.g. tcp://proxy:5557. */
  readonly proxyFrontend: string
  /** The proxy's subscriber side (XPUB), e.g. tcp://proxy:5558. */
  readonly proxyBackend: string
  /** Requests handled at once (their disk writes are committed together). */
  readonly concurrentRequestsMax: number
  /**
   * How long a request naming a channel or user this server does not know
   * waits for replication to bring it before the answer is "does not exist":
   * the broker may send a client's next request to another server before the
   * first server's change has reached it.
   */
  readonly replicationWaitMs: number
  /**
   * Coordination (reference, election, clock sync); none: a lone server
   * that never joins an election (the client services work the same).
   */
  readonly coordination: CoordinationSettings | undefined
  readonly replication?: Partial<ReplicationConfig>
  /** The monitoring channel (topic `monitor`, see monitor.ts). */
  readonly monitor?: Partial<MonitorConfig>
  /** One more xstate inspection observer per machine, by name (`--inspect`: the Stately inspector). */
  readonly inspect?: (machine: string) => ((e: InspectionEvent) => void) | undefined
  /** Where the Lamport clock's lease is kept (a file in the data folder), so a restart never reuses a clock value; none: not kept. */
  readonly lamportLease: LeaseStore | undefined
  /** Watchers of the server's insides (the simulator's checkers, tests); called synchronously, must not throw. */
  readonly observe?: ServerObserver
  /** Accounts: hashing, randomness and the cluster's token key (none: open mode, no accounts). */
  readonly credentials?: Credentials
  /** Every name must be claimed with a password before it can post, send or read private messages. */
  readonly requireAccounts?: boolean
  /** Where `GET /metrics` (Prometheus' text format, see metrics.ts) is served; none: not served (the metrics are still kept). */
  readonly metrics?: { readonly host: string; readonly port: number }
}

/** What a server shows of itself to an observer. */
export interface ServerView {
  readonly name: string
  readonly store: StoreShape
  readonly replication: ReplicationNode
  /** Undefined for a server without coordination. */
  readonly coordination: CoordinationNode | undefined
  /** Serving client requests (it has caught up once since it started). */
  readonly serving: () => boolean
  /** Its Lamport clock now. */
  readonly lamport: () => number
}

export interface ServerObserver {
  readonly started?: (view: ServerView) => void
  readonly coordination?: (event: TraceEvent) => void
  readonly replication?: (event: ReplicationTrace) => void
}

export interface CoordinationSettings {
  /** The reference's REP endpoint, e.g. tcp://reference:5559. */
  readonly reference: string
  /** Where this server's peer REP socket binds, e.g. tcp://0.0.0.0:5560. */
  readonly peerBind: string
  /** How the other servers reach it (what the reference lists), e.g. tcp://10.0.0.5:5560. */
  readonly peerAddr: string
  readonly tuning?: Partial<CoordinationConfig>
}

export const defaultServerConfig = (name: string): ServerConfig => ({
  name,
  brokerBackend: "tcp://127.0.0.1:5556",
  proxyFrontend: "tcp://127.0.0.1:5557",
  proxyBackend: "tcp://127.0.0.1:5558",
  concurrentRequestsMax: 256,
  replicationWaitMs: 500,
  coordination: undefined,
  lamportLease: undefined,
})

export { replicationTopic }

const replicationBatchMax = 1_024
/** Requests waiting on one lane to one peer; past it a new one is answered "no reply" at once. `sync` keeps at most one. */
const laneQueueMax = (lane: string) => (lane === "sync" ? 1 : 8)

/**
 * Wakes whoever waits for the store to change (a channel or user to exist,
 * an origin's position to advance): no polling.
 */
class Changes {
  readonly #waiters = new Set<() => void>()
  notify(): void {
    const waiters = [...this.#waiters]
    this.#waiters.clear()
    for (const w of waiters) w()
  }
  /** Succeeds with true as soon as `known()` holds, with false after `ms` without it. */
  until(known: () => boolean, ms: number): Effect.Effect<boolean> {
    if (known()) return Effect.succeed(true)
    const waiters = this.#waiters
    const wait = Effect.callback<boolean>((resume) => {
      const check = () => (known() ? resume(Effect.succeed(true)) : void waiters.add(check))
      waiters.add(check)
      return Effect.sync(() => void waiters.delete(check))
    })
    return Effect.map(Effect.timeoutOption(wait, Duration.millis(ms)), Option.isSome)
  }
}

/**
 * A page of a sorted list of names (`users`, `channels`): those after
 * `after`, at most `limit` and `listReplyBytesMax` once encoded; `more` says
 * whether any are left. A standard client sends neither and gets the first
 * page (all of them, for any list that fits one reply).
 */
export const listPage = <K extends string>(key: K, sorted: ReadonlyArray<string>, req: { readonly limit?: number; readonly after?: string }) => {
  let lo = 0
  if (req.after !== undefined) {
    let hi = sorted.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (sorted[mid]! <= req.after) lo = mid + 1
      else hi = mid
    }
  }
  const limit = Math.min(req.limit ?? Limits.listLimitDefault, Limits.listLimitMax)
  const out: Array<string> = []
  let bytes = 0
  let i = lo
  for (; i < sorted.length && out.length < limit; i++) {
    bytes += encode(sorted[i]!).byteLength
    if (bytes > Limits.listReplyBytesMax && out.length > 0) break
    out.push(sorted[i]!)
  }
  return { [key]: out, more: i < sorted.length } as { [P in K]: ReadonlyArray<string> } & { more: boolean }
}

/**
 * A history page within `historyReplyBytesMax` once encoded: paging forward
 * keeps its first entries, otherwise (the latest, or before a cursor) its
 * last ones, the ones nearest where the client asked from; `more` says
 * whether anything was left out.
 */
export const fitPage = (posts: ReadonlyArray<Post>, more: boolean, direction: "forward" | "backward"): { posts: ReadonlyArray<Post>; more: boolean } => {
  let bytes = 0
  const n = posts.length
  for (let i = 0; i < n; i++) {
    bytes += encode(posts[direction === "forward" ? i : n - 1 - i]!).byteLength
    if (bytes > Limits.historyReplyBytesMax && i > 0) return { posts: direction === "forward" ? posts.slice(0, i) : posts.slice(n - i), more: true }
  }
  return { posts, more }
}

/** The id of the client request being answered, if it has one. */
const RequestId = Context.Reference<string | undefined>("bulletin/server/RequestId", { defaultValue: () => undefined })

/** How the request being answered was answered (the metrics' labels): written by its reply. */
interface Outcome {
  service: string | undefined
  status: RequestStatus
}
const Outcome = Context.Reference<Outcome | undefined>("bulletin/server/Outcome", { defaultValue: () => undefined })

/** Fires once; whoever waits, before or after, goes on. */
class Once {
  #fired = false
  readonly #waiters = new Set<() => void>()
  fire(): void {
    if (this.#fired) return
    this.#fired = true
    for (const w of this.#waiters) w()
    this.#waiters.clear()
  }
  readonly wait: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (this.#fired) return resume(Effect.void)
    const w = () => resume(Effect.void)
    this.#waiters.add(w)
    return Effect.sync(() => void this.#waiters.delete(w))
  })
}

/**
 * A write the disk refused (full, failing, read-only): a condition to report
 * to the client and the operator, not a bug. The text the client gets.
 */
const diskTrouble = (cause: Cause.Cause<unknown>): string | undefined => {
  for (const r of cause.reasons) {
    if (!Cause.isFailReason(r) || !(r.error instanceof StoreError) || r.error.reason !== "Io") continue
    const code = r.error.code
    if (code === "ENOSPC" || code === "EDQUOT") return "this server's disk is full: the request was not applied; retry"
    return `this server cannot write to its disk${code === undefined ? "" : ` (${code})`}: the request was not applied; retry`
  }
  return undefined
}

/** The server role: client services over the broker, publications and replication over the proxy. */
export const server = (config: ServerConfig) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const store = yield* Store
    const stamper = new Stamper(store.maxClock())
    if (config.lamportLease !== undefined) leaseLamport(config.lamportLease, stamper.lamport)
    yield* Effect.logInfo(`server ${config.name}: ${store.opCount()} ops on disk, next seq ${store.lastSeq(config.name) + 1}, Lamport clock ${stamper.lamport.current}`)

    // With the cluster's key, the replication stream is sealed (the proxy's
    // subscriber port is open to standard clients, and a subscriber to ""
    // sees every topic): only the cluster reads it, and nobody forges it.
    const replicationKey = config.credentials?.key(replicationSeal)
    const rawPublisher = yield* transport.publisher(config.proxyFrontend, { cluster: true })
    const publisher: Publisher = {
      publish: (topic, payload) =>
        rawPublisher.publish(topic, replicationKey !== undefined && topic === replicationTopic ? seal(replicationKey, config.credentials!.nonce(), payload) : payload),
      dropped: rawPublisher.dropped,
    }
    /** A replication frame as received: opened (undefined if it was not sealed with the cluster's key). */
    const opened = (payload: Uint8Array) => (replicationKey === undefined ? payload : unseal(replicationKey, payload))
    const clock = yield* Clock.Clock
    // Fibers the nodes start (a request, a durable apply, a log line) belong
    // to this server's scope: a shutdown, or the simulator's crash,
    // interrupts every one of them, as the end of a process would.
    const run = yield* FiberSet.makeRuntime<Transport | Scope.Scope>()
    // Every machine delay and node retry runs on this role's Clock (simulated time in the simulator).
    const timers = yield* xstateClock
    const net = yield* makeNet(publisher, run)
    const changes = new Changes()
    const rankedSignal = new Once()
    const monitor = new Monitor({ ...defaultMonitorConfig, ...config.monitor }, () => Math.floor(stamper.adjust(clock.currentTimeMillisUnsafe())))
    const metrics = new ServerMetrics()
    const inspect = (machine: string) =>
      bothObservers(bothObservers(monitor.observe(machine), machine === "bully" ? metrics.bullyObserver() : undefined), config.inspect?.(machine))
    let handled = 0
    const monotonicMs = () => Number(clock.monotonicTimeNanosUnsafe() / 1_000_000n)
    /** Every request answered (busy ones too), for requests/s in the status reply. */
    const answeredRate = new RateWindow(monotonicMs())
    /** Live replication lag of the last monitoring interval (what the monitor report says). */
    let recentLag: { readonly p50Ms: number; readonly p99Ms: number } | undefined
    /** The gauges' source, once every part it reads exists (a scrape before that shows the counters). */
    let sampler: (() => ServerSample) | undefined
    if (config.metrics !== undefined) {
      const { host, port } = config.metrics
      const endpoint = yield* serveMetrics(host, port, () => {
        if (sampler !== undefined) metrics.sample(sampler())
        return metrics.render()
      }).pipe(
        Effect.mapError((e) => {
          // An operator's condition (a taken port), not a bug: one line, no stack.
          const error = new Error(`server ${config.name}: the metrics endpoint cannot listen: ${e.message}`)
          error.stack = `Error: ${error.message}`
          return error
        }),
      )
      yield* Effect.logInfo(`server ${config.name}: metrics on ${endpoint.url}`)
    }
    /** Requests answered "busy" since the last monitoring report. */
    let busy = 0
    /** Replication frames refused: not sealed with the cluster's key (forged, or from a server without it). */
    let unsealed = 0
    const replication = new ReplicationNode(
      { ...defaultReplicationConfig(config.name), ...config.replication },
      {
        net,
        clock: timers,
        lamport: stamper.lamport,
        now: () => stamper.adjust(clock.currentTimeMillisUnsafe()),
        elapsedNow: () => Number(clock.monotonicTimeNanosUnsafe() / 1_000_000n),
        store: {
          ...storeReads(store),
          // One transaction per batch: all of it durable, or none.
          apply: (ops, done, committed) =>
            void run(
              store.applyAll(ops, committed).pipe(
                Effect.match({
                  onFailure: (e) => done(e),
                  onSuccess: (outcomes) => {
                    let own = 0
                    let replicated = 0
                    for (const [i, outcome] of outcomes.entries()) {
                      if (outcome !== "applied") continue
                      if (ops[i]?.origin === config.name) own += 1
                      else replicated += 1
                    }
                    if (own > 0) metrics.opsApplied("own", own)
                    if (replicated > 0) metrics.opsApplied("replicated", replicated)
                    done()
                    changes.notify()
                  },
                }),
              ),
            ),
        },
        inspect,
        trace: (e) => {
          config.observe?.replication?.(e)
          const line = loggedReplication(config.name, e)
          if (line !== undefined) run(e.kind === "error" ? Effect.logError(line) : Effect.logInfo(line))
        },
      },
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => replication.stop()))

    /** A new local op: next sequence number, durable, replicated; then its publication for subscribers. */
    const commit = (input: OpInput) =>
      Effect.gen(function* () {
        const op = yield* Effect.callback<Op, unknown>((resume) => replication.commit(input, (error, op) => resume(error === undefined ? Effect.succeed(op!) : Effect.fail(error))))
        const post = postOf(op)
        if (post !== undefined) {
          const { topic, payload } = publicationOf(post)
          // A private message to a claimed user goes, sealed, on the topic only its logged-in clients know.
          const credentials = config.credentials
          const claim = post.service === "message" && credentials !== undefined ? store.account(post.dst) : undefined
          if (claim === undefined || credentials === undefined) yield* publisher.publish(topic, payload)
          else {
            const hidden = privateTopic(credentials, claim.user, claimRef(claim))
            yield* publisher.publish(hidden.topic, seal(hidden.key, credentials.nonce(), payload))
          }
        }
        return op
      })
    const whenReady = Effect.callback<void>((resume) => replication.whenReady(() => resume(Effect.void)))

    const waitUntil = (known: () => boolean) => changes.until(known, config.replicationWaitMs)

    const opStamp = Effect.map(stamper.now, (timestamp) => ({ clock: stamper.lamport.tick(), timestamp }))

    // Every reply carries the id of the request it answers (our extension):
    // a client that resent a request can tell a late answer to an earlier one.
    const reply = (service: string, data: Record<string, unknown>) =>
      Effect.flatMap(Effect.service(Outcome), (outcome) => {
        if (outcome !== undefined) {
          outcome.service = service
          outcome.status = statusLabel(data)
        }
        return Effect.flatMap(Effect.service(RequestId), (id) => Effect.map(stamper.stamp, (s: Stamp) => encodeEnvelope(service, id === undefined ? data : { ...data, id }, s)))
      })
    const fail = (service: string, description: string) => reply(service, { status: "erro", description, message: description })
    /** An error a retry may cure (on this server later, or on another): our client tries again. */
    const transient = (service: string, description: string, extra: Record<string, unknown> = {}) =>
      reply(service, { status: "erro", description, message: description, retry: true, ...extra })

    /** "Busy": decoded just enough to answer in kind (service, id, clock). */
    const busyReply = (frame: Uint8Array) =>
      Effect.suspend(() => {
        const env = decodeEnvelope(frame)
        const meta = env.ok ? env.envelope.meta : env.meta
        stamper.lamport.admit(meta?.clock, Limits.clientClockAheadMax)
        const service = env.ok ? env.envelope.service.slice(0, Limits.serviceCharsMax) : (env.service ?? "error")
        return transient(service, `busy: ${config.concurrentRequestsMax} requests in progress on this server; retry`, { busy: true }).pipe(Effect.provideService(RequestId, meta?.id))
      })

    /**
     * Requests being applied, by request id: a retry that arrives while the
     * first attempt is still being written waits for that attempt and gets
     * its answer; it is never acknowledged before the op is durable, and
     * never applied a second time.
     */
    const applying = new Map<string, Deferred.Deferred<Op, unknown>>()
    const once = <E>(id: string | undefined, apply: Effect.Effect<Op | undefined, E>): Effect.Effect<{ readonly op: Op | undefined; readonly joined: boolean }, unknown> =>
      Effect.gen(function* () {
        if (id === undefined) return { op: yield* apply, joined: false }
        const earlier = applying.get(id)
        if (earlier !== undefined) return { op: yield* Deferred.await(earlier), joined: true }
        const mine = yield* Deferred.make<Op, unknown>()
        applying.set(id, mine)
        return yield* apply.pipe(
          Effect.tap((op) => Deferred.succeed(mine, op!)),
          Effect.tapCause((cause) => Deferred.failCause(mine, cause)),
          Effect.map((op) => ({ op, joined: false })),
          Effect.ensuring(Effect.sync(() => applying.delete(id))),
        )
      })

    /**
     * A channel post or private message: applied once per request id, after
     * its target exists (waiting a little for replication to bring it).
     */
    const post = (
      service: "publish" | "message",
      meta: Meta,
      targetKnown: () => boolean,
      missing: string,
      input: (stamp: { clock: number; timestamp: number }) => OpInput,
    ) =>
      Effect.gen(function* () {
        const earlier = meta.id === undefined ? undefined : store.opForRequest(meta.id)
        if (earlier !== undefined) return yield* reply(service, { status: "OK", cursor: cursorOf(earlier) })
        const { op } = yield* once(
          meta.id,
          Effect.gen(function* () {
            if (!(yield* waitUntil(targetKnown))) return undefined
            return yield* commit(input(yield* opStamp))
          }),
        )
        if (op === undefined) return yield* fail(service, missing)
        return yield* reply(service, { status: "OK", cursor: cursorOf(op) })
      })

    // --- accounts (our extension; see credentials.ts) --------------------------------------
    const credentials = config.credentials
    const nowMs = () => Math.floor(stamper.adjust(clock.currentTimeMillisUnsafe()))
    const tokenFor = (user: string, claim: Extract<Op, { kind: "account" }>) =>
      Effect.flatMap(issueToken(credentials!, user, claimRef(claim), nowMs()), (token) => {
        const hidden = privateTopic(credentials!, user, claimRef(claim))
        return reply("login", { status: okStatus("login"), token, topic: hidden.topic, topicKey: Buffer.from(hidden.key).toString("hex") })
      })

    /** A login to a claimed name: its password, then a token. */
    const loginClaimed = (user: string, password: string | undefined, claim: Extract<Op, { kind: "account" }>) =>
      Effect.gen(function* () {
        if (password === undefined || credentials === undefined) return yield* fail("login", `'${user}' is a claimed name: log in with its password`)
        if (!(yield* passwordMatches(credentials, password, claim))) return yield* fail("login", `wrong password for '${user}'`)
        return yield* tokenFor(user, claim)
      })

    /** A first login with a password: the name's claim, an op like any other (the first in the total order holds). */
    const claimName = (user: string, password: string, meta: Meta) =>
      Effect.gen(function* () {
        if (credentials === undefined) return yield* fail("login", "accounts need the cluster's key: this cluster runs in open mode")
        const { op } = yield* once(
          meta.id,
          Effect.gen(function* () {
            const held = store.account(user)
            if (held !== undefined) return held
            if (!store.hasUser(user)) yield* commit({ kind: "user", user, ...(yield* opStamp) })
            const salt = yield* credentials.random(16)
            const hash = yield* credentials.hash(password, salt)
            return yield* commit({ kind: "account", user, salt, hash, id: meta.id, ...(yield* opStamp) })
          }),
        )
        // Another claim may have come first (from another server, replicated meanwhile): it holds.
        const holder = store.account(user) ?? (op?.kind === "account" ? op : undefined)
        if (holder === undefined) return yield* fail("login", `'${user}' could not be claimed; retry`)
        return yield* loginClaimed(user, password, holder)
      })

    /**
     * A request acting as `name` (posting as it, sending as it, reading its
     * private conversations): refused for a claimed name without a valid token,
     * and for any name when the cluster requires accounts. Undefined: go on.
     */
    const refusedAs = (name: string, token: string | undefined, service: "publish" | "message" | "history" = "publish") => {
      const claim = store.account(name)
      if (claim === undefined) {
        return config.requireAccounts === true ? fail(service, `this cluster requires accounts: log in to '${name}' with a password first`) : undefined
      }
      if (credentials !== undefined && tokenValid(credentials, token, name, claimRef(claim), nowMs())) return undefined
      return fail(service, `'${name}' is a claimed name: log in with its password (this request carries no valid token for it)`)
    }

    const handlers: { [S in ClientRequest["service"]]: (req: RequestOf<S>, meta: Meta) => Effect.Effect<Uint8Array, unknown> } = {
      login: (req, meta) =>
        Effect.gen(function* () {
          const claimed = store.account(req.user)
          if (claimed !== undefined) return yield* loginClaimed(req.user, req.password, claimed)
          if (req.password !== undefined) return yield* claimName(req.user, req.password, meta)
          if (config.requireAccounts === true) return yield* fail("login", `this cluster requires accounts: log in to '${req.user}' with a password (the first login with one claims the name)`)
          if (!store.hasUser(req.user) && (meta.id === undefined || store.opForRequest(meta.id) === undefined)) {
            yield* once(meta.id, Effect.suspend(() => (store.hasUser(req.user) ? Effect.succeed(undefined) : Effect.flatMap(opStamp, (stamp) => commit({ kind: "user", user: req.user, id: meta.id, ...stamp })))))
          }
          return yield* reply("login", { status: okStatus("login") })
        }),
      users: (req) => reply("users", { status: "OK", ...listPage("users", store.users(), req) }),
      channel: (req, meta) =>
        Effect.gen(function* () {
          // Idempotent: channels are a grow-only set replicated by union, so two
          // servers may both create the same name; the answer must not depend
          // on which one the broker picked. `created` says whether this call did.
          const earlier = meta.id === undefined ? undefined : store.opForRequest(meta.id)
          if (earlier !== undefined) return yield* reply("channel", { status: okStatus("channel"), created: true })
          if (store.hasChannel(req.channel) && !applying.has(meta.id ?? "")) return yield* reply("channel", { status: okStatus("channel"), created: false })
          const { op } = yield* once(meta.id, Effect.suspend(() => (store.hasChannel(req.channel) ? Effect.succeed(undefined) : Effect.flatMap(opStamp, (stamp) => commit({ kind: "channel", channel: req.channel, id: meta.id, ...stamp })))))
          return yield* reply("channel", { status: okStatus("channel"), created: op !== undefined })
        }),
      channels: (req) => reply("channels", { status: "OK", ...listPage("channels", store.channels(), req) }),
      publish: (req, meta) =>
        refusedAs(req.user, req.token) ??
        post("publish", meta, () => store.hasChannel(req.channel), `channel '${req.channel}' does not exist`, (stamp) => ({
          kind: "publish", user: req.user, channel: req.channel, message: req.message, id: meta.id, ...stamp,
        })),
      message: (req, meta) =>
        refusedAs(req.src, req.token, "message") ??
        post("message", meta, () => store.hasUser(req.dst), `user '${req.dst}' does not exist`, (stamp) => ({
          kind: "message", src: req.src, dst: req.dst, message: req.message, id: meta.id, ...stamp,
        })),
      history: (req) =>
        (req.user === undefined ? undefined : refusedAs(req.user, req.token, "history")) ??
        Effect.gen(function* () {
          // A server that is catching up (after a restart or a partition) answers once it has.
          yield* whenReady
          // Read-your-writes: the client's own writes (per origin) must be here;
          // if not, pull now and wait a little. Still missing: say so (the
          // client retries, maybe on a server that has them) rather than
          // answer a history without them.
          if (req.seen !== undefined) {
            const seen = req.seen
            const missing = () => Object.entries(seen).filter(([origin, seq]) => (store.vector().get(origin) ?? 0) < seq).map(([origin]) => origin)
            const lacking = missing()
            if (lacking.length > 0) {
              replication.want(lacking)
              if (!(yield* waitUntil(() => missing().length === 0))) {
                return yield* transient("history", `this server has not received your earlier writes yet (from ${missing().join(", ")}); retry`, { missing: missing() })
              }
            }
          }
          // A channel nobody created is an error, worded as publish words it (waiting a little, as
          // publish does, for replication to bring a channel just created on another server).
          const channel = req.channel
          if (channel !== undefined && !(yield* waitUntil(() => store.hasChannel(channel)))) return yield* fail("history", `channel '${channel}' does not exist`)
          const page = yield* store.history(req.channel !== undefined ? { ...req, channel: req.channel } : { ...req, user: req.user!, peer: req.peer! })
          const fitted = fitPage(page.posts, page.more, req.after !== undefined ? "forward" : "backward")
          return yield* reply("history", { status: "OK", messages: fitted.posts, more: fitted.more })
        }),
    }

    const handle = (frame: Uint8Array) =>
      Effect.gen(function* () {
        const decoded = decodeRequest(frame)
        const clockOk = stamper.lamport.admit(decoded.meta?.clock, Limits.clientClockAheadMax)
        if (!decoded.ok) return yield* fail(decoded.service ?? "error", decoded.description).pipe(Effect.provideService(RequestId, decoded.meta?.id))
        if (!clockOk) {
          const ahead = decoded.meta.clock! - stamper.lamport.current
          return yield* fail(decoded.value.service, `field 'clock' is ${ahead} ahead of this server's Lamport clock; at most ${Limits.clientClockAheadMax} is accepted`).pipe(
            Effect.provideService(RequestId, decoded.meta.id),
          )
        }
        const req = decoded.value
        const handler = handlers[req.service] as (r: ClientRequest, m: Meta) => Effect.Effect<Uint8Array, unknown>
        return yield* handler(req, decoded.meta).pipe(
          Effect.catchCause((cause) => {
            const disk = diskTrouble(cause)
            return disk !== undefined
              ? Effect.logWarning(`server ${config.name}: ${req.service} not applied: ${disk.split(":")[0]}`).pipe(Effect.andThen(transient(req.service, disk)))
              : Effect.logError(`server ${config.name}: ${req.service} failed`, cause).pipe(Effect.andThen(transient(req.service, "internal error: the request was not applied; retry")))
          }),
          Effect.provideService(RequestId, decoded.meta.id),
        )
      })

    // Replication: apply other origins' ops. Idempotent, so duplicates are harmless.
    const subscriber = yield* transport.subscriber(config.proxyBackend, [replicationTopic])
    // Coordinator announcements on a subscriber of their own: the control
    // plane never waits behind a burst of replication on the data plane's queue.
    const announcements = config.coordination === undefined ? undefined : yield* transport.subscriber(config.proxyBackend, [coordinatorTopic])
    yield* awaitSubscription(config, publisher, subscriber, stamper, opened)
    replication.start()
    // Declared before the coordination node starts: its peer port may ask for the status at once.
    let serving = false
    let inFlight = 0
    let hosted: CoordinationNode | undefined
    const node =
      config.coordination === undefined
        ? undefined
        : yield* hostCoordination(config.name, config.coordination, stamper, net, replication, run, timers, inspect, {
            ...config.observe,
            coordination: (e) => {
              if (e.kind === "rank") rankedSignal.fire()
              if (e.kind === "coordinator" && e.coordinator !== undefined) metrics.coordinatorChanged()
              config.observe?.coordination?.(e)
            },
          }, () => statusOf())
    hosted = node
    /** What the status reply (peer service `status`, `bulletin status`) adds to ping's coordinator and term. */
    function statusOf(): Record<string, unknown> {
      const vector = store.vector()
      let gapOps = 0
      for (const [origin, prefix] of vector) gapOps += Math.max(0, store.lastSeq(origin) - prefix)
      const c = hosted?.snapshot()
      return {
        serving,
        rank: c?.rank,
        offsetMs: c?.offsetMs ?? 0,
        ops: store.opCount(),
        vector: Object.fromEntries(vector),
        gapOps,
        ...(recentLag === undefined ? {} : { lagP50Ms: Math.round(recentLag.p50Ms * 10) / 10, lagP99Ms: Math.round(recentLag.p99Ms * 10) / 10 }),
        requestsPerSecond: Math.round(answeredRate.perSecond(monotonicMs()) * 10) / 10,
        inFlight,
      }
    }
    const sample = (): ServerSample => {
      const c = hosted?.snapshot()
      return {
        serving,
        inFlight,
        lamport: stamper.lamport.current,
        rank: c?.rank,
        term: c?.coordinator?.term ?? c?.term,
        isCoordinator: c !== undefined && c.coordinator?.name === config.name,
        peers: c?.peers.length ?? 0,
        offsetMs: c?.offsetMs ?? 0,
        ops: store.opCount(),
        users: store.users().length,
        channels: store.channels().length,
        vector: store.vector(),
        lastSeq: (origin) => store.lastSeq(origin),
        lag: recentLag,
      }
    }
    sampler = sample
    config.observe?.started?.({ name: config.name, store, replication, coordination: node, serving: () => serving, lamport: () => stamper.lamport.current })

    // The monitoring channel: one bounded report per interval (dropped at
    // the publisher when nobody subscribes to `monitor`).
    let lastReportAt = clock.currentTimeMillisUnsafe()
    const report = (): MonitorReport => {
      const elapsed = Math.max(1, clock.currentTimeMillisUnsafe() - lastReportAt)
      lastReportAt += elapsed
      const rate = (handled * 1000) / elapsed
      const busyRate = (busy * 1000) / elapsed
      handled = 0
      busy = 0
      return buildReport({
        server: config.name,
        at: Math.floor(stamper.adjust(clock.currentTimeMillisUnsafe())),
        coordination: node?.snapshot(),
        replicationState: replication.state,
        monitor,
        ops: store.opCount(),
        vector: store.vector(),
        lag: (recentLag = replication.drainLag()),
        requestsPerSecond: rate,
        busyPerSecond: busyRate,
      })
    }
    yield* Effect.forkScoped(
      supervised(
        `server ${config.name} monitor`,
        Effect.forever(
          Effect.gen(function* () {
            yield* Effect.sleep(Duration.millis(monitor.config.intervalMs))
            const stamp = yield* stamper.stamp
            yield* publisher.publish(monitorTopic, encodeEnvelope("monitor", report() as unknown as Record<string, unknown>, stamp))
          }),
        ),
      ),
    )
    yield* Effect.forkScoped(
      supervised(
        `server ${config.name} replication`,
        Effect.forever(
          Effect.gen(function* () {
            // Everything that has arrived goes to disk in one batch (one fsync).
            const batch = yield* Queue.takeBetween(subscriber.messages, 1, replicationBatchMax)
            const frames = batch.flatMap((p) => {
              const frame = opened(p.payload)
              if (frame === undefined) metrics.frameRefused()
              if (frame === undefined && unsealed++ % 1000 === 0) run(Effect.logWarning(`server ${config.name}: ${unsealed} replication frame(s) refused: not sealed with the cluster's key`))
              return frame === undefined ? [] : [frame]
            })
            if (frames.length === 0) return
            yield* Effect.callback<void>((resume) => replication.handlePublications(frames, () => resume(Effect.void)))
          }),
        ),
      ),
    )
    if (announcements !== undefined) {
      yield* Effect.forkScoped(
        supervised(
          `server ${config.name} announcements`,
          Effect.forever(Effect.map(Queue.take(announcements.messages), ({ payload }) => node?.handleAnnouncement(payload))),
        ),
      )
    }
    if (node === undefined) replication.setPeers([])
    // A server the reference has not ranked is not one of the cluster's: it
    // takes no client request (it would answer from a store nobody replicates to).
    if (node !== undefined && node.snapshot().rank === undefined) {
      const ranked = yield* Effect.map(Effect.timeoutOption(rankedSignal.wait, Duration.millis(2_000)), Option.isSome)
      if (!ranked) {
        yield* Effect.logWarning(`server ${config.name}: no rank from the reference yet; not serving clients until it gives one`)
        yield* rankedSignal.wait
      }
    }
    // Catch up before taking requests: a restarted server serves nothing it has not yet caught up on.
    yield* whenReady

    const replier = yield* transport.replier(config.brokerBackend, "connect", { cluster: true })
    serving = true
    yield* Effect.logInfo(`server ${config.name}: serving requests from ${config.brokerBackend}`)
    // Past concurrentRequestsMax a request is answered "busy" at once (the
    // client backs off and retries with the same id) rather than left to
    // queue until it times out, unanswered.
    /** A reply sent: counted, timed from the request's arrival. */
    const answered = (outcome: Outcome, startedNs: bigint) =>
      Effect.sync(() => {
        metrics.request(outcome.service, outcome.status, Number(clock.monotonicTimeNanosUnsafe() - startedNs) / 1e9)
        answeredRate.add(monotonicMs())
      })
    return yield* supervised(
      `server ${config.name} requests`,
      Effect.forever(
        Effect.gen(function* () {
          const request = yield* Queue.take(replier.requests)
          const startedNs = clock.monotonicTimeNanosUnsafe()
          const outcome: Outcome = { service: undefined, status: "error" }
          if (inFlight >= config.concurrentRequestsMax) {
            busy += 1
            return yield* busyReply(request.frame).pipe(Effect.provideService(Outcome, outcome), Effect.flatMap(request.reply), Effect.andThen(answered(outcome, startedNs)))
          }
          inFlight += 1
          yield* Effect.forkScoped(
            handle(request.frame).pipe(
              Effect.provideService(Outcome, outcome),
              Effect.flatMap(request.reply),
              Effect.tap(() => Effect.sync(() => { handled += 1; node?.messageHandled() })),
              Effect.tap(() => answered(outcome, startedNs)),
              Effect.ensuring(Effect.sync(() => void (inFlight -= 1))),
            ),
          )
        }),
      ),
    )
  })

/**
 * Subscriptions travel to the proxy asynchronously, so a server that served
 * requests at once would miss the first replication ops of its peers (the
 * ZeroMQ "slow joiner"). It publishes a probe on the replication topic until
 * its own subscriber sees it come back through the proxy, for at most
 * `readyTimeoutMs`.
 */
const readyTimeoutMs = 5_000
const awaitSubscription = (config: ServerConfig, publisher: Publisher, subscriber: Subscriber, stamper: Stamper, opened: (payload: Uint8Array) => Uint8Array | undefined) =>
  Effect.gen(function* () {
    const probe = `${config.name}:${yield* Random.nextIntBetween(0, 2 ** 48, { halfOpen: true })}`
    const seen = Effect.gen(function* () {
      for (;;) {
        const { payload } = yield* Queue.take(subscriber.messages)
        const frame = opened(payload)
        if (frame === undefined) continue
        const raw = decode(frame)
        if (raw.ok && (raw.value as { data?: { probe?: unknown } } | null)?.data?.probe === probe) return
      }
    })
    const send = Effect.flatMap(stamper.stamp, (s) => publisher.publish(replicationTopic, encodeEnvelope("replication", { probe }, s)))
    const pinging = Effect.forever(Effect.andThen(send, Effect.sleep(Duration.millis(50))))
    const ok = yield* Effect.raceFirst(seen.pipe(Effect.as(true)), pinging).pipe(Effect.timeoutOption(Duration.millis(readyTimeoutMs)))
    if (ok._tag === "None") yield* Effect.logWarning(`server ${config.name}: no echo from the proxy within ${readyTimeoutMs} ms; serving anyway`)
  })

/** Coordination events worth a log line (the rest is visible through the node's snapshot). */
const logged = (name: string, e: TraceEvent): string | undefined => {
  switch (e.kind) {
    case "rank":
      return `server ${name}: rank ${e.rank}`
    case "reference":
      return `server ${name}: reference ${e.up ? "reachable" : "unreachable"}`
    case "coordinator":
      return e.coordinator === undefined
        ? `server ${name}: election started`
        : `server ${name}: coordinator is ${e.coordinator}${e.self ? " (this server)" : ""}, term ${e.term?.epoch}/${e.term?.rank}`
    case "coordinatorDown":
      return `server ${name}: coordinator ${e.coordinator} stopped answering`
    case "round":
      return `server ${name}: Berkeley round ${e.round}: ${e.used} clocks averaged, ${e.dropped} left out`
    case "adjust":
      return Math.abs(e.offsetMs) >= 1 ? `server ${name}: clock adjusted by ${e.offsetMs.toFixed(1)} ms (from ${e.from})` : undefined
    default:
      return undefined
  }
}

/** Replication events worth a log line. */
const loggedReplication = (name: string, e: ReplicationTrace): string | undefined => {
  switch (e.kind) {
    case "caughtUp":
      return `server ${name}: ${e.caughtUp ? "caught up" : "gave up waiting to catch up"}: ${e.ops} ops pulled from ${e.peers} peers in ${e.ms.toFixed(0)} ms${e.failedPulls > 0 ? ` (${e.failedPulls} pull${e.failedPulls === 1 ? "" : "s"} unanswered)` : ""}`
    case "catchingUp":
      return `server ${name}: catching up`
    case "gap":
      return `server ${name}: gap in ${e.origin}: have up to ${e.have}, saw ${e.saw}; pulling`
    case "error":
      return `server ${name}: replication (${e.where}) failed: ${e.message}`
    case "lag":
      return `server ${name}: replication lag over the last ${e.ops} ops: p50 ${e.p50Ms.toFixed(1)} ms, p99 ${e.p99Ms.toFixed(1)} ms, max ${e.maxMs.toFixed(1)} ms`
    default:
      return undefined
  }
}

/**
 * Requests (one REQ socket per endpoint and lane, Lazy Pirate timeouts) and
 * publications, as the nodes want them. Each lane queues a bounded number of
 * requests (`laneQueueMax`): past it a request is answered "no reply" at once,
 * so a peer that does not answer cannot make a lane grow without end.
 */
const makeNet = (publisher: Publisher, run: <A, E>(e: Effect.Effect<A, E, Transport | Scope.Scope>) => unknown) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const requesters = new Map<string, Requester>()
    const queued = new Map<string, number>()
    const creating = yield* Semaphore.make(1)
    const requesterFor = (key: string, endpoint: string) =>
      creating.withPermits(1)(
        Effect.suspend(() => {
          const known = requesters.get(key)
          if (known !== undefined) return Effect.succeed(known)
          return Effect.tap(transport.requester(endpoint, { cluster: true }), (r) => Effect.sync(() => requesters.set(key, r)))
        }),
      )
    const net: CoordinationNet = {
      request: (to, frame, timeoutMs, lane, done) => {
        const key = `${lane} ${to}`
        const n = queued.get(key) ?? 0
        if (n >= laneQueueMax(lane)) return void run(Effect.andThen(Effect.yieldNow, Effect.sync(() => done(undefined))))
        queued.set(key, n + 1)
        void run(
          requesterFor(key, to).pipe(
            Effect.flatMap((r) => r.request(frame, timeoutMs)),
            Effect.ensuring(Effect.sync(() => queued.set(key, (queued.get(key) ?? 1) - 1))),
            Effect.match({ onFailure: () => done(undefined), onSuccess: (reply) => done(reply) }),
          ),
        )
      },
      publish: (topic, frame) => void run(publisher.publish(topic, frame)),
    }
    return net
  })

/**
 * Runs the coordination node inside the server: the peer REP socket (shared
 * with replication's catch-up requests), announcements through the proxy,
 * and the adjusted clock stamping everything the server sends.
 */
const hostCoordination = (
  name: string,
  settings: CoordinationSettings,
  stamper: Stamper,
  net: CoordinationNet,
  replication: ReplicationNode,
  run: <A, E>(e: Effect.Effect<A, E, Transport | Scope.Scope>) => unknown,
  timers: XClock,
  inspect?: (machine: string) => ((e: InspectionEvent) => void) | undefined,
  observe?: ServerObserver,
  describe: () => Record<string, unknown> = () => ({}),
) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const clock = yield* Clock.Clock
    const node = new CoordinationNode(
      { ...defaultCoordinationConfig(name, settings.reference, settings.peerAddr), ...settings.tuning },
      {
        rawNow: () => clock.currentTimeMillisUnsafe(),
        // The host's timers drive the machines' delays (the simulator gives its own).
        clock: timers,
        lamport: stamper.lamport,
        trace: (e) => {
          observe?.coordination?.(e)
          if (e.kind === "error") return void run(Effect.logError(`server ${name}: coordination (${e.where}) failed`, e.message))
          const line = logged(name, e)
          // Berkeley rounds and clock adjustments are most of the lines: at debug (BULLETIN_LOG_LEVEL=debug).
          if (line !== undefined) run(e.kind === "round" || e.kind === "adjust" ? Effect.logDebug(line) : Effect.logInfo(line))
        },
        net,
        peersChanged: (peers) => replication.setPeers(peers),
        inspect,
        rejoined: () => replication.rejoined(),
      },
    )
    stamper.adjust = (raw) => node.adjusted(raw)
    const peers: Replier = yield* transport.replier(settings.peerBind, "bind", { cluster: true })
    /**
     * `status` (our extension, what `bulletin status` asks): ping's answer
     * (whom it follows, under which term) and the server's replication
     * position, lag and request rate.
     */
    const status = (frame: Uint8Array) => {
      const env = decodeEnvelope(frame)
      stamper.lamport.observe(env.ok ? env.envelope.meta.clock : env.meta?.clock)
      const stamp = { clock: stamper.lamport.tick(), timestampMs: Math.floor(stamper.adjust(clock.currentTimeMillisUnsafe())) }
      const coordinator = node.coordinator
      return encodeEnvelope("status", { status: "OK", name, coordinator: coordinator?.name, term: coordinator?.term, ...describe() }, stamp)
    }
    const answer = (frame: Uint8Array) => {
      const service = serviceOf(frame)
      return service === "replicate" ? replication.handlePeerRequest(frame) : service === "status" ? status(frame) : node.handlePeerRequest(frame)
    }
    yield* Effect.forkScoped(
      supervised(
        `server ${name} peers`,
        Effect.forever(Effect.flatMap(Queue.take(peers.requests), (request) => request.reply(answer(request.frame)))),
      ),
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => node.stop()))
    node.start()
    yield* Effect.logInfo(`server ${name}: peers on ${settings.peerBind} (advertised as ${settings.peerAddr}), reference ${settings.reference}`)
    return node
  })
