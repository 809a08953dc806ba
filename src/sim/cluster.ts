import { type CoordinationConfig, CoordinationNode, type TraceEvent, defaultCoordinationConfig } from "../actors/coordination.ts"
import { ReferenceService } from "../actors/reference.ts"
import { Registry, type RegistrySnapshot } from "../actors/registry.ts"
import { ReplicationNode, defaultReplicationConfig, replicationTopic, storeReads } from "../actors/replication.ts"
import { serviceOf } from "../protocol/replication.ts"
import { type OrderedKv, openMemory } from "../store/OrderedKv.ts"
import { type HistoryPage, type StoreShape, makeStore } from "../store/Store.ts"
import type { Post } from "../protocol/messages.ts"
import { Effect } from "effect"
import type { InspectionEvent } from "xstate"
import { Monitor, type MonitorReport, bothObservers, buildReport } from "../actors/monitor.ts"
import { LamportClock } from "../machines/lamport.ts"
import { defaultSlewing } from "../machines/slewingClock.ts"
import { decodeEnvelope } from "../protocol/messages.ts"
import { Prng } from "./prng.ts"
import { type Fault, type Scenario, describeFault, proxyName, referenceName, serverName } from "./scenario.ts"
import { Scheduler } from "./scheduler.ts"

/**
 * The deterministic cluster simulator: a reference and N servers in one
 * process, each server running the real CoordinationNode (and so the real
 * machines, codec and decoders) over a simulated network and simulated
 * physical clocks, all driven by one scheduler and one seeded PRNG.
 *
 * Requests go point to point; publications on `servers` go to the proxy,
 * then from the proxy to every other server, as in the real topology. Each
 * message crosses a link with a uniform delay (so messages overtake each
 * other), may be dropped or duplicated, and is lost if the link is cut or
 * its destination is down.
 */
export interface SimOptions {
  /** Overrides of the servers' coordination settings (the defaults are production's). */
  readonly config?: Partial<CoordinationConfig>
  readonly serverDeadAfterMs?: number
  /** How often the checkers sample the cluster. */
  readonly sampleEveryMs?: number
  /** Berkeley rounds that must complete after agreement before clocks are checked. */
  readonly roundsBeforeClockCheck?: number
  /** Keep a readable timeline (costs time; the CLI wants it, property tests do not). */
  readonly timeline?: boolean
  readonly eventsMax?: number
  readonly replication?: Partial<import("../actors/replication.ts").ReplicationConfig>
  /**
   * Record what the monitoring channel would publish: every this many
   * simulated ms, one report per live server (as a live server makes them),
   * plus notes (faults, crashes, checks); for the dashboard's replay.
   */
  readonly monitorEveryMs?: number
  /** One more xstate inspection observer per server and machine (`sim --inspect`); `simNow` is the simulated time (ms). */
  readonly inspect?: (server: string, machine: string, simNow: () => number) => ((e: InspectionEvent) => void) | undefined
}

export interface SimMonitoring {
  readonly reports: ReadonlyArray<MonitorReport>
  readonly notes: ReadonlyArray<{ readonly at: number; readonly text: string }>
  readonly startAt: number
  readonly endAt: number
}

export interface Check {
  readonly name: string
  readonly ok: boolean
  readonly detail: string
}

export interface SimResult {
  readonly scenario: Scenario
  readonly ok: boolean
  readonly checks: ReadonlyArray<Check>
  readonly timeline: ReadonlyArray<string>
  /** With `monitorEveryMs`: the reports and notes of the run. */
  readonly monitoring: SimMonitoring | undefined
  readonly stats: {
    readonly events: number
    readonly messages: number
    /** From the heal to the moment every live server agrees for good on the highest live one. */
    readonly agreementAfterHealMs: number | undefined
    readonly agreementBoundMs: number
    readonly coordinator: string | undefined
    /** Largest spread between live adjusted clocks, sampled after k rounds following agreement. */
    readonly clockSpreadMs: number | undefined
    readonly clockBoundMs: number
    readonly roundsAfterAgreement: number
    /** Each crash of the agreed coordinator, and how long until all live servers agreed on a new one (undefined: not within the run). */
    readonly coordinatorCrashes: ReadonlyArray<{ readonly at: number; readonly newCoordinatorAfterMs: number | undefined }>
    /** Client posts written and acknowledged (the set check's denominator). */
    readonly written: number
    readonly acknowledged: number
    /** Catch-ups: ops pulled and how long each took. */
    readonly catchUps: ReadonlyArray<{ readonly ops: number; readonly ms: number }>
  }
}

const clientName = "client"

/** Every post in a replica's channel history, paging forward from the start. */
const fullHistory = (store: StoreShape) => {
  const posts: Array<{ message: string; origin: string; seq: number; clock: number }> = []
  let after: [number, string, number] | number = 0
  for (let page = 0; page < 10_000; page++) {
    const p: HistoryPage = Effect.runSync(store.history({ channel: "general", after, limit: 500 }))
    for (const x of p.posts) posts.push({ message: x.message, origin: x.origin, seq: x.seq, clock: x.clock })
    const last: Post | undefined = p.posts.at(-1)
    if (!p.more || last === undefined) break
    after = [last.clock, last.origin, last.seq]
  }
  return posts
}

/**
 * Jepsen's set check on every live replica, and replica equality: every
 * acknowledged post present exactly once (none lost, none duplicated), no
 * post that no client wrote, and all replicas holding the same history in
 * the same order (compared as a digest).
 */
export const replicaChecks = (
  replicas: ReadonlyArray<{ readonly name: string; readonly store: StoreShape | undefined }>,
  writes: ReadonlyArray<{ readonly message: string; readonly acked: boolean }>,
): Array<Check> => {
  const written = new Set(writes.map((w) => w.message))
  const acked = writes.filter((w) => w.acked)
  const problems: Array<string> = []
  const digests = new Map<string, Array<string>>()
  let present = 0
  for (const r of replicas) {
    if (r.store === undefined) continue
    const posts = fullHistory(r.store)
    const count = new Map<string, number>()
    for (const p of posts) count.set(p.message, (count.get(p.message) ?? 0) + 1)
    const lost = acked.filter((w) => (count.get(w.message) ?? 0) === 0).length
    const duplicated = [...count.values()].filter((c) => c > 1).length
    const phantom = posts.filter((p) => !written.has(p.message)).length
    present = Math.max(present, acked.length - lost)
    if (lost + duplicated + phantom > 0) problems.push(`${r.name}: ${lost} lost, ${duplicated} duplicated, ${phantom} never written`)
    const digest = posts.map((p) => `${p.clock}/${p.origin}/${p.seq}/${p.message}`).join("|")
    digests.set(digest, [...(digests.get(digest) ?? []), r.name])
  }
  return [
    {
      name: "every acknowledged post on every live replica exactly once",
      ok: problems.length === 0,
      detail: problems.join("; ") || `${acked.length} acknowledged of ${writes.length} written; all present once on ${replicas.length} replicas`,
    },
    {
      name: "replicas identical after quiescence",
      ok: digests.size <= 1,
      detail: digests.size <= 1 ? `${digests.size === 1 ? "one digest" : "no replicas"}` : [...digests.values()].map((names) => `{${names.join(" ")}}`).join(" differ from ") ,
    },
  ]
}

/** Simulated epoch: times look like 2026 dates in the timeline and on the wire. */
const epochMs = 1_790_000_000_000

interface SimServer {
  readonly name: string
  readonly addr: string
  readonly driftPpm: number
  stepMs: number
  skewMs: number
  alive: boolean
  incarnation: number
  node: CoordinationNode | undefined
  replication: ReplicationNode | undefined
  /** The server's disk: survives crashes. Its Store (indexes in memory) is rebuilt at each start. */
  readonly kv: OrderedKv
  store: StoreShape | undefined
  /** Lamport clock: survives restarts, as the server's store keeps it. */
  readonly lamport: LamportClock
  lastStamp: number
  lastSendClock: number
  receivedClockMax: number
}

export const runScenario = (scenario: Scenario, options: SimOptions = {}): SimResult => {
  const sched = new Scheduler()
  const prng = new Prng(scenario.seed)
  const timeline: Array<string> = []
  const violations = { monotonic: [] as Array<string>, lamport: [] as Array<string>, terms: [] as Array<string>, errors: [] as Array<string> }
  const sampleEveryMs = options.sampleEveryMs ?? 100
  const roundsBeforeClockCheck = options.roundsBeforeClockCheck ?? 3
  const serverDeadAfterMs = options.serverDeadAfterMs ?? 3_500
  const eventsMax = options.eventsMax ?? 5_000_000
  let endMs = scenario.faultPhaseMs + scenario.healPhaseMs
  /** The run is extended (up to this much) until the clock check has had its window. */
  const extensionMsMax = 120_000
  let messages = 0

  const monitoring = options.monitorEveryMs === undefined ? undefined : { reports: [] as Array<MonitorReport>, notes: [] as Array<{ at: number; text: string }> }
  const noteworthy = /^(FAULT|HEAL|CHECK)$/
  const log = (who: string, text: string) => {
    if (options.timeline) timeline.push(`${(sched.now / 1000).toFixed(3).padStart(8)}s  ${who.padEnd(9)} ${text}`)
    if (monitoring !== undefined && (noteworthy.test(who) || /CRASHED|started|^up$/.test(text))) monitoring.notes.push({ at: epochMs + sched.now, text: `${who} ${text}` })
  }

  // --- network ------------------------------------------------------------------
  const cut = new Set<string>()
  let net = { ...scenario.network }
  const blocked = (a: string, b: string) => cut.has(`${a}>${b}`)
  const deliver = (from: string, to: string, fn: () => void) => {
    messages += 1
    if (blocked(from, to) || prng.chance(net.dropRate)) return
    const copies = prng.chance(net.duplicateRate) ? 2 : 1
    for (let i = 0; i < copies; i++) sched.after(prng.real(net.delayMinMs, net.delayMaxMs), () => isAlive(to) && fn())
  }

  // --- nodes ------------------------------------------------------------------------
  const names = Array.from({ length: scenario.servers }, (_, i) => serverName(i))
  const servers = new Map<string, SimServer>(
    names.map((name, i) => [
      name,
      {
        name,
        addr: `tcp://${name}:5560`,
        driftPpm: scenario.clocks[i]?.driftPpm ?? 0,
        skewMs: scenario.clocks[i]?.skewMs ?? 0,
        stepMs: 0,
        alive: false,
        incarnation: 0,
        node: undefined,
        replication: undefined,
        kv: openMemory(),
        store: undefined,
        lamport: new LamportClock(),
        lastStamp: Number.NEGATIVE_INFINITY,
        lastSendClock: 0,
        receivedClockMax: 0,
      },
    ]),
  )
  const byAddr = new Map([...servers.values()].map((s) => [s.addr, s.name]))
  const referenceAddr = "tcp://reference:5559"
  byAddr.set(referenceAddr, referenceName)

  let ranks: RegistrySnapshot | undefined
  let reference: ReferenceService | undefined
  const startReference = () => {
    const registry = new Registry({ deadAfterMs: serverDeadAfterMs, serversMax: 64 }, ranks)
    // Ranks are kept on disk; liveness is not.
    reference = new ReferenceService(registry, { now: () => epochMs + sched.now, ranksChanged: (s) => (ranks = s) })
    log(referenceName, "up")
  }
  let proxyUp = true
  const isAlive = (name: string) => (name === clientName ? true : name === referenceName ? reference !== undefined : name === proxyName ? proxyUp : servers.get(name)?.alive === true)

  const rawNow = (s: SimServer) => epochMs + sched.now + (sched.now * s.driftPpm) / 1e6 + s.skewMs + s.stepMs

  const trace = (s: SimServer, e: TraceEvent) => {
    switch (e.kind) {
      case "stamp":
        if (e.timeMs < s.lastStamp) violations.monotonic.push(`${s.name}#${s.incarnation} stamped ${e.timeMs} after ${s.lastStamp} at ${sched.now} ms`)
        s.lastStamp = e.timeMs
        return
      case "send":
        if (e.clock <= s.lastSendClock || e.clock <= s.receivedClockMax) {
          violations.lamport.push(`${s.name} sent ${e.service} with clock ${e.clock} after sending ${s.lastSendClock} and receiving ${s.receivedClockMax}`)
        }
        s.lastSendClock = e.clock
        return
      case "receive":
        if (e.clock !== undefined) s.receivedClockMax = Math.max(s.receivedClockMax, e.clock)
        return
      case "coordinator": {
        if (e.self && e.term !== undefined) {
          const key = `${e.term.epoch}/${e.term.rank}`
          const holder = termHolders.get(key)
          if (holder !== undefined && holder !== s.name) violations.terms.push(`term ${key} claimed by ${holder} and ${s.name}`)
          termHolders.set(key, s.name)
        }
        log(s.name, e.coordinator === undefined ? "electing" : e.self ? `COORDINATOR, term ${e.term?.epoch}/${e.term?.rank}` : `follows ${e.coordinator} (term ${e.term?.epoch}/${e.term?.rank})`)
        return
      }
      case "round":
        if (s.name === agreedOn && agreedSince !== undefined && sched.now >= scenario.faultPhaseMs) {
          roundsAfterAgreement += 1
          if (roundsAfterAgreement === roundsBeforeClockCheck) {
            // Corrections are slewed: give the largest one now pending the time to land.
            const times = live().map((x) => x.node!.now())
            const spread = Math.max(...times) - Math.min(...times)
            clockCheckFrom = sched.now + spread / (options.config?.slewing ?? defaultSlewing).slewRate + c.roundIntervalMs
            log("CHECK", `${roundsBeforeClockCheck} rounds since agreement: spread ${spread.toFixed(3)} ms; clocks checked from ${(clockCheckFrom / 1000).toFixed(3)}s`)
          }
        }
        log(s.name, `Berkeley round ${e.round}: ${e.used} clocks averaged, ${e.dropped} left out`)
        return
      case "adjust":
        log(s.name, `clock adjusted by ${e.offsetMs.toFixed(2)} ms (from ${e.from})`)
        return
      case "rank":
        log(s.name, `rank ${e.rank}`)
        return
      case "reference":
        log(s.name, e.up ? "reference reachable" : "reference unreachable")
        return
      case "coordinatorDown":
        log(s.name, `lost coordinator ${e.coordinator}`)
        return
      case "state":
        return
      case "error":
        violations.errors.push(`${s.name}: ${e.where}: ${e.message.split("\n")[0]}`)
        log(s.name, `ERROR in ${e.where}: ${e.message}`)
        return
    }
  }
  const termHolders = new Map<string, string>()
  const catchUps: Array<{ ops: number; ms: number }> = []
  const c = { ...defaultCoordinationConfig("x", referenceAddr, undefined), ...options.config }

  const config = (s: SimServer) => ({ ...defaultCoordinationConfig(s.name, referenceAddr, s.addr), ...options.config })

  // The monitoring channel's view, per server across its incarnations.
  const monitors = new Map(names.map((n) => [n, new Monitor({ intervalMs: options.monitorEveryMs ?? 1_000, transitionsMax: 256 }, () => epochMs + sched.now)]))
  const handled = new Map(names.map((n) => [n, 0]))
  const inspectFor = (s: SimServer) => (machine: string) =>
    bothObservers(monitoring === undefined ? undefined : monitors.get(s.name)!.observe(machine), options.inspect?.(s.name, machine, () => sched.now))

  const startServer = (s: SimServer) => {
    if (s.alive) return
    s.alive = true
    s.incarnation += 1
    s.lastStamp = Number.NEGATIVE_INFINITY
    const clock = sched.xstateClock()
    const incarnation = s.incarnation
    const net = {
      request: (to: string, frame: Uint8Array, timeoutMs: number, _lane: string, done: (reply: Uint8Array | undefined) => void) => {
        let finished = false
        const timer = sched.after(timeoutMs, () => {
          if (finished) return
          finished = true
          done(undefined)
        })
        const target = byAddr.get(to)
        if (target === undefined) return
        deliver(s.name, target, () => {
          const reply = handle(target, frame)
          if (reply === undefined) return
          deliver(target, s.name, () => {
            if (finished || s.incarnation !== incarnation || !s.alive) return
            finished = true
            sched.cancel(timer)
            done(reply)
          })
        })
      },
      publish: (topic: string, frame: Uint8Array) => {
        deliver(s.name, proxyName, () => {
          for (const other of servers.values()) {
            if (other === s) continue
            deliver(proxyName, other.name, () => (topic === replicationTopic ? other.replication?.handlePublications([frame]) : other.node?.handleAnnouncement(frame)))
          }
        })
      },
    }
    // A fresh Store over the same disk: indexes rebuilt, nothing in memory kept.
    const store = makeStore(s.kv)
    s.store = store
    const replication = new ReplicationNode({ ...defaultReplicationConfig(s.name), ...options.replication }, {
      net,
      clock,
      lamport: s.lamport,
      now: () => s.node?.now() ?? rawNow(s),
      elapsedNow: () => sched.now,
      inspect: inspectFor(s),
      store: {
        ...storeReads(store),
        // Durable at once (the memory disk); the caller hears of it after a simulated fsync.
        apply: (ops, done) => {
          Effect.runSync(Effect.all(ops.map(store.apply), { discard: true }))
          sched.after(prng.real(0.1, 2), () => s.incarnation === incarnation && s.alive && done())
        },
      },
      trace: (e) => {
        if (e.kind === "error") violations.errors.push(`${s.name}: replication ${e.where}: ${e.message.split("\n")[0]}`)
        if (e.kind === "caughtUp") catchUps.push({ ops: e.ops, ms: e.ms })
        if (e.kind === "caughtUp") log(s.name, `${e.caughtUp ? "caught up" : "GAVE UP catching up"}: ${e.ops} ops from ${e.peers} peers in ${e.ms.toFixed(0)} ms`)
        if (e.kind === "catchingUp") log(s.name, "catching up")
        if (e.kind === "gap") log(s.name, `gap in ${e.origin}: have ${e.have}, saw ${e.saw}`)
      },
    })
    s.replication = replication
    const node = new CoordinationNode(config(s), {
      rawNow: () => rawNow(s),
      clock,
      lamport: s.lamport,
      trace: (e) => trace(s, e),
      net,
      inspect: inspectFor(s),
      peersChanged: (peers) => replication.setPeers(peers),
      rejoined: () => replication.rejoined(),
    })
    s.node = node
    log(s.name, `started (incarnation ${s.incarnation})`)
    replication.start()
    node.start()
  }

  const crash = (name: string) => {
    if (name === proxyName) {
      if (proxyUp) log(proxyName, "CRASHED")
      proxyUp = false
      return
    }
    if (name === referenceName) {
      if (reference === undefined) return
      reference = undefined
      log(referenceName, "CRASHED")
      return
    }
    const s = servers.get(name)
    if (s === undefined || !s.alive) return
    const wasCoordinator = agreedOn === name
    s.alive = false
    s.node?.stop()
    s.node = undefined
    s.replication?.stop()
    s.replication = undefined
    s.store = undefined
    log(name, "CRASHED")
    if (wasCoordinator) coordinatorCrashes.push({ at: sched.now, newCoordinatorAfterMs: undefined })
  }
  const restart = (name: string) => {
    if (name === proxyName) {
      if (!proxyUp) log(proxyName, "up")
      proxyUp = true
      return
    }
    if (name === referenceName) {
      if (reference === undefined) startReference()
      return
    }
    const s = servers.get(name)
    if (s !== undefined) startServer(s)
  }

  /** A request's handling at its target; the reply must be causally after the request. */
  const handle = (target: string, frame: Uint8Array): Uint8Array | undefined => {
    const server = servers.get(target)
    const reply =
      target === referenceName
        ? reference?.handle(frame)
        : serviceOf(frame) === "replicate"
          ? server?.replication?.handlePeerRequest(frame)
          : server?.node?.handlePeerRequest(frame)
    if (reply === undefined) return undefined
    const req = decodeEnvelope(frame)
    const rep = decodeEnvelope(reply)
    const a = req.ok ? req.envelope.meta.clock : undefined
    const b = rep.ok ? rep.envelope.meta.clock : undefined
    if (a !== undefined && (b === undefined || b <= a)) violations.lamport.push(`${target} replied with clock ${b} to a request with clock ${a}${rep.ok ? "" : ` (${rep.description})`}`)
    return reply
  }

  // --- faults -------------------------------------------------------------------------
  const allNodes = [referenceName, proxyName, ...names]
  const applyFault = (f: Fault) => {
    log("FAULT", describeFault(f))
    switch (f.kind) {
      case "partition": {
        const group = new Map<string, number>()
        f.groups.forEach((g, i) => g.forEach((n) => group.set(n, i)))
        for (const a of allNodes) for (const b of allNodes) if (a !== b && group.get(a) !== group.get(b)) cut.add(`${a}>${b}`)
        return
      }
      case "cut":
        cut.add(`${f.from}>${f.to}`)
        return
      case "heal":
        cut.clear()
        return
      case "crash":
        return crash(f.node)
      case "restart":
        return restart(f.node)
      case "clockStep": {
        const s = servers.get(f.node)
        if (s !== undefined) s.stepMs += f.ms
        return
      }
    }
  }

  // --- clients: posts with request ids, Lazy Pirate retries on another server ----------
  interface Write {
    readonly id: string
    readonly message: string
    acked: boolean
    attempts: number
  }
  const writes: Array<Write> = []
  const clientTimeoutMs = 1_000
  const clientAttemptsMax = 3
  /** The server side of a post, as the real server does it: once per request id, durable before the reply. */
  const serveWrite = (target: string, w: Write, reply: (ok: boolean) => void) => {
    const s = servers.get(target)
    const store = s?.store
    const replication = s?.replication
    if (s === undefined || store === undefined || replication === undefined || s.node === undefined || !replication.started) return
    handled.set(target, (handled.get(target) ?? 0) + 1)
    if (store.opForRequest(w.id) !== undefined) return reply(true)
    replication.commit({ kind: "publish", user: "client", channel: "general", message: w.message, id: w.id, clock: s.lamport.tick(), timestamp: Math.floor(s.node.now()) }, (error) => reply(error === undefined))
  }
  const startWrite = (n: number) => {
    const w: Write = { id: `w${n}`, message: `post ${n}`, acked: false, attempts: 0 }
    writes.push(w)
    const attempt = () => {
      w.attempts += 1
      const target = prng.pick(names)
      let finished = false
      const retry = () => {
        if (w.attempts < clientAttemptsMax) attempt()
      }
      const timer = sched.after(clientTimeoutMs, () => {
        if (finished) return
        finished = true
        retry()
      })
      deliver(clientName, target, () =>
        serveWrite(target, w, (ok) =>
          deliver(target, clientName, () => {
            if (finished) return
            finished = true
            sched.cancel(timer)
            if (ok) w.acked = true
            else retry()
          }),
        ),
      )
    }
    attempt()
  }

  // --- checkers' sampling ---------------------------------------------------------------
  const coordinatorCrashes: Array<{ at: number; newCoordinatorAfterMs: number | undefined }> = []
  let agreedOn: string | undefined
  let agreedSince: number | undefined
  let roundsAfterAgreement = 0
  let clockSpreadMs: number | undefined
  let clockCheckFrom: number | undefined
  const live = () => [...servers.values()].filter((s) => s.alive && s.node !== undefined)
  const rankOf = (name: string) => ranks?.ranks.find((r) => r.name === name)?.rank ?? 0
  /** The name every live server follows, if they agree and it leads; else undefined. */
  const agreement = (): string | undefined => {
    const nodes = live()
    if (nodes.length === 0) return undefined
    const first = nodes[0]!.node!.coordinator?.name
    if (first === undefined) return undefined
    if (!nodes.every((s) => s.node!.coordinator?.name === first)) return undefined
    const leader = servers.get(first)
    return leader?.alive === true && leader.node?.isCoordinator === true ? first : undefined
  }
  const sample = () => {
    const agreed = agreement()
    if (agreed !== agreedOn) {
      agreedOn = agreed
      agreedSince = agreed === undefined ? undefined : sched.now
      roundsAfterAgreement = 0
      clockCheckFrom = undefined
      if (agreed !== undefined) {
        log("CHECK", `all live servers agree: ${agreed} coordinates`)
        for (const c of coordinatorCrashes) if (c.newCoordinatorAfterMs === undefined) c.newCoordinatorAfterMs = sched.now - c.at
      }
    }
    if (agreed !== undefined && clockCheckFrom !== undefined && sched.now >= clockCheckFrom) {
      const times = live().map((s) => s.node!.now())
      if (times.length > 0) {
      const spread = Math.max(...times) - Math.min(...times)
      if (spread > (clockSpreadMs ?? 0) + 1) log("CHECK", `clock spread ${spread.toFixed(3)} ms: ${live().map((x, i) => `${x.name} ${(times[i]! - times[0]!).toFixed(1)}`).join(" ")}`)
      clockSpreadMs = Math.max(clockSpreadMs ?? 0, spread)
      }
    }
    sampling = sched.now + sampleEveryMs <= endMs
    if (sampling) sched.after(sampleEveryMs, sample)
  }
  let sampling = true

  // --- the run ---------------------------------------------------------------------------
  startReference()
  for (const s of servers.values()) sched.after(prng.int(0, 500), () => startServer(s))
  for (const f of scenario.faults) if (f.at < scenario.faultPhaseMs) sched.at(f.at, () => applyFault(f))
  const writesPerSecond = scenario.writesPerSecond ?? 0
  if (writesPerSecond > 0) {
    let n = 0
    const every = 1_000 / writesPerSecond
    const next = () => {
      startWrite((n += 1))
      if (sched.now + every < scenario.faultPhaseMs) sched.after(prng.real(0.5 * every, 1.5 * every), next)
    }
    sched.after(prng.real(0, every), next)
  }
  if (scenario.messagesPerSecond > 0) {
    const every = 1_000 / scenario.messagesPerSecond
    const traffic = (s: SimServer) => {
      if (s.alive && s.node !== undefined) {
        s.node.messageHandled()
        handled.set(s.name, (handled.get(s.name) ?? 0) + 1)
      }
      if (sched.now + every <= endMs) sched.after(prng.real(0.5 * every, 1.5 * every), () => traffic(s))
    }
    for (const s of servers.values()) sched.after(prng.real(0, every), () => traffic(s))
  }
  sched.after(sampleEveryMs, sample)
  if (monitoring !== undefined) {
    const every = options.monitorEveryMs!
    const report = () => {
      for (const s of servers.values()) {
        const count = handled.get(s.name) ?? 0
        handled.set(s.name, 0)
        if (!s.alive || s.node === undefined || s.replication === undefined || s.store === undefined) continue
        monitoring.reports.push(
          buildReport({
            server: s.name,
            at: epochMs + sched.now,
            coordination: s.node.snapshot(),
            replicationState: s.replication.state,
            monitor: monitors.get(s.name)!,
            ops: s.store.opCount(),
            vector: s.store.vector(),
            lag: s.replication.drainLag(),
            requestsPerSecond: (count * 1_000) / every,
          }),
        )
      }
      if (sched.now + every <= endMs + extensionMsMax) sched.after(every, report)
    }
    sched.after(every, report)
  }
  sched.at(scenario.faultPhaseMs, () => {
    log("HEAL", "network healed, crashed nodes restart, clocks stop stepping")
    cut.clear()
    net = { delayMinMs: scenario.healDelayMinMs, delayMaxMs: scenario.healDelayMaxMs, dropRate: 0, duplicateRate: 0 }
    if (reference === undefined) startReference()
    restart(proxyName)
    for (const s of servers.values()) startServer(s)
  })
  sched.runUntil(endMs, eventsMax)
  const checkWindowMs = 2 * c.roundIntervalMs
  while (endMs < scenario.faultPhaseMs + scenario.healPhaseMs + extensionMsMax && (clockCheckFrom === undefined || clockCheckFrom + checkWindowMs > endMs)) {
    endMs += 1_000
    if (sched.now + sampleEveryMs <= endMs && !sampling) sched.after(sampleEveryMs, sample)
    sched.runUntil(endMs, eventsMax)
  }

  // --- verdicts --------------------------------------------------------------------------
  // Worst case after the heal: a restarted server registers, the reference
  // forgets the dead, followers notice a dead coordinator, an election waits
  // out a dead higher peer, and a stale leader hears the real one.
  const agreementBoundMs =
    c.startupTimeoutMs + c.registerRetryMs + c.requestTimeoutMs + serverDeadAfterMs + (c.livenessMax + 1) * c.heartbeatIntervalMs + c.electionTimeoutMs + 2 * c.coordinatorTimeoutMs + 2 * c.announceIntervalMs
  // A sample's offset is off by at most half the difference of the two
  // one-way delays; every corrected clock lands within that of the average,
  // so two clocks within twice that; then they drift apart until the next
  // round, and a correction may still be being slewed (up to the same again).
  const asymmetryMs = (scenario.healDelayMaxMs - scenario.healDelayMinMs) / 2
  const driftMax = Math.max(0, ...scenario.clocks.map((k) => Math.abs(k.driftPpm))) / 1e6
  const betweenRoundsMs = c.roundIntervalMs + c.pollTimeoutMs + 2 * scenario.healDelayMaxMs
  const clockBoundMs = 2 * (2 * asymmetryMs + 2 * driftMax * betweenRoundsMs) + 1
  const nodes = live()
  const highest = nodes.reduce<SimServer | undefined>((best, s) => (best === undefined || rankOf(s.name) > rankOf(best.name) ? s : best), undefined)
  const agreementAfterHealMs = agreedSince === undefined ? undefined : Math.max(0, agreedSince - scenario.faultPhaseMs)
  const checks: Array<Check> = [
    {
      name: "one coordinator after healing: the highest-ranked live server, known to all",
      ok: agreedOn !== undefined && agreedOn === highest?.name,
      detail: `agreed on ${agreedOn ?? "nobody"}; highest live is ${highest?.name} (rank ${highest === undefined ? "-" : rankOf(highest.name)}); views: ${nodes.map((s) => `${s.name}->${s.node!.coordinator?.name ?? "?"}`).join(" ")}`,
    },
    {
      name: "agreement within the bound derived from the timeouts",
      ok: agreementAfterHealMs !== undefined && agreementAfterHealMs <= agreementBoundMs,
      detail: `${agreementAfterHealMs ?? "never"} ms after healing; bound ${agreementBoundMs} ms`,
    },
    { name: "no two coordinators with the same term", ok: violations.terms.length === 0, detail: violations.terms.slice(0, 3).join("; ") || `${termHolders.size} terms, each claimed once` },
    {
      name: `clocks within the bound after ${roundsBeforeClockCheck} Berkeley rounds`,
      ok: clockSpreadMs !== undefined && clockSpreadMs <= clockBoundMs,
      detail: `largest spread ${clockSpreadMs?.toFixed(3) ?? `not measured (${roundsAfterAgreement} rounds after agreement)`} ms; bound ${clockBoundMs.toFixed(3)} ms (delay asymmetry ${asymmetryMs} ms, drift ${driftMax * 1e6} ppm)`,
    },
    { name: "no server's clock ever runs backwards", ok: violations.monotonic.length === 0, detail: violations.monotonic.slice(0, 3).join("; ") || "every stamp >= the one before" },
    { name: "no handler or machine failed", ok: violations.errors.length === 0, detail: violations.errors.slice(0, 3).join("; ") || "none" },
    { name: "Lamport clocks respect causality", ok: violations.lamport.length === 0, detail: violations.lamport.slice(0, 3).join("; ") || "every send after its causes" },
  ]
  checks.push(...replicaChecks(live(), writes))
  for (const check of checks) log("CHECK", `${check.ok ? "ok  " : "FAIL"} ${check.name}: ${check.detail}`)
  for (const s of servers.values()) s.node?.stop()
  return {
    scenario,
    ok: checks.every((k) => k.ok),
    checks,
    timeline,
    monitoring: monitoring === undefined ? undefined : { ...monitoring, startAt: epochMs, endAt: epochMs + sched.now },
    stats: {
      events: sched.executed,
      messages,
      agreementAfterHealMs,
      agreementBoundMs,
      coordinator: agreedOn,
      clockSpreadMs,
      clockBoundMs,
      roundsAfterAgreement,
      coordinatorCrashes,
      written: writes.length,
      acknowledged: writes.filter((w) => w.acked).length,
      catchUps,
    },
  }
}
