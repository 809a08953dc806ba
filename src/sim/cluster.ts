import { Cause, Effect, Exit, type Fiber } from "effect"
import type { InspectionEvent } from "xstate"
import { bot } from "../actors/bot.ts"
import { type ClientConfig, defaultClientConfig, makeClient } from "../actors/client.ts"
import { type CoordinationConfig, type TraceEvent, defaultCoordinationConfig } from "../actors/coordination.ts"
import { broker, proxy } from "../actors/devices.ts"
import { type MonitorReport, decodeReport, monitorTopic } from "../actors/monitor.ts"
import { simulatedCredentials } from "../actors/credentials.ts"
import { reference } from "../actors/reference.ts"
import type { RegistrySnapshot } from "../actors/registry.ts"
import type { ReplicationConfig } from "../actors/replication.ts"
import { type ServerView, defaultServerConfig, server } from "../actors/server.ts"
import { defaultSlewing } from "../machines/slewingClock.ts"
import { Limits } from "../protocol/limits.ts"
import { type Post, decodeEnvelope } from "../protocol/messages.ts"
import { MemoryDisk } from "../store/OrderedKv.ts"
import { type HistoryPage, Store, type StoreShape, makeStore } from "../store/Store.ts"
import { SimNetwork, type SimHost } from "../transport/simulated.ts"
import { Transport } from "../transport/Transport.ts"
import { Prng } from "./prng.ts"
import { type Fault, type Scenario, brokerName, describeFault, proxyName, referenceName, serverName } from "./scenario.ts"
import type { Timer } from "./scheduler.ts"
import { Ledger, type PostSeen, type Write, clientWorkload, hostileWorkload, intruderWorkload, readAll } from "./workload.ts"
import { type HostClock, type LogLevelName, World, epochMs } from "./world.ts"

/**
 * The deterministic cluster simulator. Every role is the real program from
 * src/actors — `server(config)`, `reference`, `broker`, `proxy`, the client
 * and the bot — forked on simulated time (its own Clock, a seeded Random,
 * the simulator's scheduler) over the simulated Transport (FIFO connections,
 * a round-robin broker, a proxy with subscriptions, partitions that stall
 * and then drop connections) and, for servers, a memory disk that loses
 * every unflushed batch on a crash. Nothing here serves a request: the
 * simulator schedules, injects faults, and checks.
 */
export interface SimOptions {
  /** Overrides of the servers' coordination settings (the defaults are production's). */
  readonly config?: Partial<CoordinationConfig>
  readonly serverDeadAfterMs?: number
  /** How often the checkers sample the cluster. */
  readonly sampleEveryMs?: number
  /** Berkeley rounds that must complete after agreement before clocks are checked. */
  readonly roundsBeforeClockCheck?: number
  /** Extend the run until the clocks have been checked (default); false: stop at the end of the heal phase. */
  readonly waitForClockCheck?: boolean
  /** Keep a readable timeline (costs time; the CLI wants it, property tests do not). */
  readonly timeline?: boolean
  readonly eventsMax?: number
  readonly replication?: Partial<ReplicationConfig>
  /**
   * Record what the monitoring channel publishes, with notes (faults,
   * crashes, checks), for the dashboard's replay; servers report every this
   * many simulated ms (default 1000, as in production, recording or not: another value
   * makes another run).
   */
  readonly monitorEveryMs?: number
  readonly record?: boolean
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
    /** Client writes (logins, channels, posts, private messages) sent, and acknowledged. */
    readonly written: number
    readonly acknowledged: number
    /** Client requests of every kind, and the longest one (ms). */
    readonly requests: number
    readonly longestRequestMs: number
    /** Catch-ups: ops pulled and how long each took. */
    readonly catchUps: ReadonlyArray<{ readonly ops: number; readonly ms: number }>
    /** What the network did: connections dropped by heartbeat timeouts, publications dropped, and so on. */
    readonly network: Readonly<Record<string, number>>
  }
}

type Kind = "reference" | "broker" | "proxy" | "server" | "client" | "bot" | "hostile" | "intruder" | "checker" | "recorder"

interface Role {
  readonly name: string
  readonly kind: Kind
  readonly clock: HostClock
  /** Should be running (crashed roles are restarted at the heal; a role that exits is restarted after a pause). */
  up: boolean
  incarnation: number
  fiber: Fiber.Fiber<unknown, unknown> | undefined
  host: SimHost | undefined
  /** Servers: the disk (survives crashes), its Lamport lease, and what the running incarnation shows of itself. */
  readonly disk: MemoryDisk | undefined
  lease: number | undefined
  view: ServerView | undefined
  lastStamp: number
  lastSendClock: number
  receivedClockMax: number
}

/** Servers' monitoring interval in the simulator, recorded or not (so recording does not change a run). */
export const monitorEveryMsDefault = 1_000

const endpoints = {
  reference: "tcp://reference:5559",
  brokerFront: "tcp://broker:5555",
  brokerBack: "tcp://broker:5556",
  proxyFront: "tcp://proxy:5557",
  proxyBack: "tcp://proxy:5558",
  peer: (name: string) => `tcp://${name}:5560`,
}

/** The password the simulated client u1 claims its name with. */
const simPassword = "u1's password"

/** Errors from faults the run injected (a full or failing disk): expected, not bugs. */
const injected = /ENOSPC|EIO|disk is full|cannot write to its disk/

export const runScenario = (scenario: Scenario, options: SimOptions = {}): SimResult => {
  const world = new World()
  const sched = world.sched
  const prng = new Prng(scenario.seed)
  const timeline: Array<string> = []
  const violations = { monotonic: [] as Array<string>, lamport: [] as Array<string>, terms: [] as Array<string>, errors: [] as Array<string> }
  const sampleEveryMs = options.sampleEveryMs ?? 100
  const roundsBeforeClockCheck = options.roundsBeforeClockCheck ?? 3
  const serverDeadAfterMs = options.serverDeadAfterMs ?? 3_500
  const eventsMax = options.eventsMax ?? 20_000_000
  const faultEndMs = scenario.faultPhaseMs
  let endMs = scenario.faultPhaseMs + scenario.healPhaseMs
  /** The run is extended (up to this much) until the clock check has had its window. */
  const extensionMsMax = 120_000

  const monitoring = !(options.record ?? options.monitorEveryMs !== undefined) ? undefined : { reports: [] as Array<MonitorReport>, notes: [] as Array<{ at: number; text: string }> }
  const noteworthy = /^(FAULT|HEAL|CHECK)$/
  const log = (who: string, text: string) => {
    if (options.timeline) timeline.push(`${(sched.now / 1000).toFixed(3).padStart(8)}s  ${who.padEnd(9)} ${text}`)
    if (monitoring !== undefined && (noteworthy.test(who) || /CRASHED|started|^up$/.test(text))) monitoring.notes.push({ at: epochMs + sched.now, text: `${who} ${text}` })
  }

  const link = (n: Scenario["network"]) => ({ delayMinMs: n.delayMinMs, delayMaxMs: n.delayMaxMs, dropRate: n.dropRate, duplicateRate: n.duplicateRate, reorderRate: n.reorderRate ?? 0 })
  // The cluster's key: every cluster role holds it, nobody else (scenario.open: none at all).
  const clusterKey = scenario.open === true ? undefined : "cluster-key"
  const net = new SimNetwork({
    timers: { now: () => sched.now, after: (ms, fn) => sched.after(ms, fn), cancel: (t) => sched.cancel(t as Timer) },
    random: () => prng.next(),
    params: link(scenario.network),
    ...(clusterKey === undefined ? {} : { clusterKey }),
  })

  // --- roles ----------------------------------------------------------------------------
  const names = Array.from({ length: scenario.servers }, (_, i) => serverName(i))
  const clientCount = scenario.clients ?? 2
  const botCount = scenario.bots ?? 0
  const flush = scenario.disk ?? { flushMsMin: 0.5, flushMsMax: 3 }
  const roles = new Map<string, Role>()
  const addRole = (name: string, kind: Kind, clock: HostClock = { skewMs: 0, driftPpm: 0, stepMs: 0 }) => {
    const disk = kind === "server" ? new MemoryDisk({ after: (ms, fn) => void sched.after(ms, fn), immediate: (fn) => void sched.immediate(fn) }, () => prng.real(flush.flushMsMin, flush.flushMsMax)) : undefined
    const role: Role = { name, kind, clock, up: false, incarnation: 0, fiber: undefined, host: undefined, disk, lease: undefined, view: undefined, lastStamp: Number.NEGATIVE_INFINITY, lastSendClock: 0, receivedClockMax: 0 }
    roles.set(name, role)
    return role
  }
  addRole(referenceName, "reference")
  addRole(brokerName, "broker")
  addRole(proxyName, "proxy")
  for (const [i, name] of names.entries()) addRole(name, "server", { skewMs: scenario.clocks[i]?.skewMs ?? 0, driftPpm: scenario.clocks[i]?.driftPpm ?? 0, stepMs: 0 })
  const clientNames = Array.from({ length: clientCount }, (_, i) => `c${i + 1}`)
  for (const c of clientNames) addRole(c, "client")
  const botNames = Array.from({ length: botCount }, (_, i) => `b${i + 1}`)
  for (const b of botNames) addRole(b, "bot")
  const hostileNames = Array.from({ length: scenario.hostile ?? 0 }, (_, i) => `x${i + 1}`)
  for (const h of hostileNames) addRole(h, "hostile")
  const intruderNames = Array.from({ length: scenario.intruders ?? 0 }, (_, i) => `mallory${i + 1}`)
  for (const m of intruderNames) addRole(m, "intruder")
  const servers = () => [...roles.values()].filter((r) => r.kind === "server")

  let ranks: RegistrySnapshot | undefined
  const c = { ...defaultCoordinationConfig("x", endpoints.reference, undefined), ...options.config }
  const ledger = new Ledger()
  const termHolders = new Map<string, string>()
  const catchUps: Array<{ ops: number; ms: number }> = []
  const coordinatorCrashes: Array<{ at: number; newCoordinatorAfterMs: number | undefined }> = []
  const clientConfig: ClientConfig = { ...defaultClientConfig, broker: endpoints.brokerFront, proxy: endpoints.proxyBack }

  const traceOf = (r: Role, e: TraceEvent) => {
    switch (e.kind) {
      case "stamp":
        if (e.timeMs < r.lastStamp) violations.monotonic.push(`${r.name}#${r.incarnation} stamped ${e.timeMs} after ${r.lastStamp} at ${sched.now} ms`)
        r.lastStamp = e.timeMs
        return
      case "send":
        if (e.clock <= r.lastSendClock || e.clock <= r.receivedClockMax) {
          violations.lamport.push(`${r.name} sent ${e.service} with clock ${e.clock} after sending ${r.lastSendClock} and receiving ${r.receivedClockMax}`)
        }
        r.lastSendClock = e.clock
        return
      case "receive":
        if (e.clock !== undefined) r.receivedClockMax = Math.max(r.receivedClockMax, e.clock)
        return
      case "coordinator":
        if (e.self && e.term !== undefined) {
          const key = `${e.term.epoch}/${e.term.rank}`
          const holder = termHolders.get(key)
          if (holder !== undefined && holder !== r.name) violations.terms.push(`term ${key} claimed by ${holder} and ${r.name}`)
          termHolders.set(key, r.name)
        }
        return
      case "round":
        if (r.name === agreedOn && agreedSince !== undefined && sched.now >= faultEndMs) {
          roundsAfterAgreement += 1
          if (roundsAfterAgreement === roundsBeforeClockCheck) {
            // Corrections are slewed: give the largest one now pending the time to land.
            const times = live().map((x) => x.view!.coordination!.now())
            const spread = Math.max(...times) - Math.min(...times)
            clockCheckFrom = sched.now + spread / (options.config?.slewing ?? defaultSlewing).slewRate + c.roundIntervalMs
            log("CHECK", `${roundsBeforeClockCheck} rounds since agreement: spread ${spread.toFixed(3)} ms; clocks checked from ${(clockCheckFrom / 1000).toFixed(3)}s`)
          }
        }
        return
      case "error":
        if (!injected.test(e.message)) violations.errors.push(`${r.name}: ${e.where}: ${e.message.split("\n")[0]}`)
        return
      default:
        return
    }
  }

  const logFor = (r: Role, incarnation: number) => (level: LogLevelName, text: string) => {
    if (r.incarnation !== incarnation || !r.up) return
    const line = text.startsWith(`server ${r.name}: `) ? text.slice(`server ${r.name}: `.length) : text
    // A client or bot that gives up on an unreachable broker logs an error; that is the network, not a bug.
    if ((level === "Error" || level === "Fatal") && !injected.test(text) && r.kind !== "bot" && r.kind !== "client") violations.errors.push(`${r.name}: ${line.split("\n")[0]}`)
    if (options.timeline) log(r.name, level === "Info" ? line : `${level.toUpperCase()} ${line}`)
  }

  const program = (r: Role): Effect.Effect<unknown, unknown, Transport> => {
    switch (r.kind) {
      case "reference":
        return Effect.scoped(
          reference({
            bind: endpoints.reference,
            serverDeadAfterMs,
            serversMax: 64,
            dataDir: undefined,
            // Ranks are kept on disk; liveness is not.
            ranks: { load: () => ranks, save: (s) => void (ranks = s) },
          }),
        )
      case "broker":
        return broker({ frontend: endpoints.brokerFront, backend: endpoints.brokerBack })
      case "proxy":
        return proxy({ frontend: endpoints.proxyFront, backend: endpoints.proxyBack })
      case "server": {
        const incarnation = r.incarnation
        const base = defaultServerConfig(r.name)
        const config = {
          ...base,
          brokerBackend: endpoints.brokerBack,
          proxyFrontend: endpoints.proxyFront,
          proxyBackend: endpoints.proxyBack,
          coordination: { reference: endpoints.reference, peerBind: endpoints.peer(r.name), peerAddr: endpoints.peer(r.name), tuning: options.config },
          replication: options.replication,
          monitor: { intervalMs: options.monitorEveryMs ?? monitorEveryMsDefault },
          lamportLease: { load: () => r.lease, save: (v: number) => void (r.lease = v) },
          inspect: options.inspect === undefined ? undefined : (machine: string) => options.inspect!(r.name, machine, () => sched.now),
          credentials: clusterKey === undefined ? undefined : simulatedCredentials(() => prng.next()),
          observe: {
            started: (view: ServerView) => {
              if (r.incarnation === incarnation) r.view = view
            },
            coordination: (e: TraceEvent) => {
              if (r.incarnation === incarnation && r.up) traceOf(r, e)
            },
            replication: (e: { readonly kind: string; readonly ops?: number; readonly ms?: number; readonly message?: string; readonly where?: string }) => {
              if (r.incarnation !== incarnation || !r.up) return
              if (e.kind === "caughtUp") catchUps.push({ ops: e.ops!, ms: e.ms! })
              if (e.kind === "error" && !injected.test(e.message ?? "")) violations.errors.push(`${r.name}: replication ${e.where}: ${(e.message ?? "").split("\n")[0]}`)
            },
          },
        }
        // A fresh Store over the same disk: indexes rebuilt from what is durable, nothing in memory kept.
        const store = makeStore(r.disk!.session())
        return Effect.scoped(server(config)).pipe(Effect.provideService(Store, store))
      }
      case "client": {
        const i = clientNames.indexOf(r.name)
        return clientWorkload({
          name: `u${i + 1}`,
          config: clientConfig,
          ledger,
          prng: new Prng(prng.nextU32()),
          now: () => sched.now,
          until: faultEndMs,
          writesPerSecond: (scenario.writesPerSecond ?? 0) / clientCount,
          readsPerSecond: scenario.messagesPerSecond / clientCount,
          peers: clientNames.map((_, j) => `u${j + 1}`),
          // u1 claims its name (accounts need the cluster key); the others use the standard's open names.
          ...(i === 0 && clusterKey !== undefined ? { password: simPassword } : {}),
        })
      }
      case "bot":
        return Effect.scoped(bot({ ...clientConfig, messagesPerSecond: 2, messagesPerChannel: 5, messagesMax: 0, name: undefined }))
      case "intruder":
        return intruderWorkload({
          prng: new Prng(prng.nextU32()),
          now: () => sched.now,
          until: faultEndMs,
          reference: endpoints.reference,
          peers: names.map(endpoints.peer),
          brokerBack: endpoints.brokerBack,
          proxyFront: endpoints.proxyFront,
          victim: "u1",
        })
      case "hostile":
        return hostileWorkload({ config: clientConfig, prng: new Prng(prng.nextU32()), now: () => sched.now, until: faultEndMs, clockAheadMax: Limits.clientClockAheadMax })
      default:
        return Effect.void
    }
  }

  const start = (r: Role, run?: Effect.Effect<unknown, unknown, Transport>) => {
    if (r.up) return
    r.up = true
    r.incarnation += 1
    r.lastStamp = Number.NEGATIVE_INFINITY
    r.view = undefined
    const incarnation = r.incarnation
    // Only the cluster's roles hold its key.
    const member = r.kind === "reference" || r.kind === "broker" || r.kind === "proxy" || r.kind === "server"
    const host = net.boot(r.name, member ? clusterKey : undefined)
    r.host = host
    if (r.kind !== "client" && r.kind !== "hostile" && r.kind !== "intruder" && r.kind !== "checker" && r.kind !== "recorder") log(r.name, r.kind === "server" ? `started (incarnation ${incarnation})` : "up")
    const effect = (run ?? program(r)).pipe(Effect.provideService(Transport, net.transport(host)))
    r.fiber = world.spawn(effect, {
      clock: world.clock(r.clock),
      seed: prng.nextU32(),
      log: logFor(r, incarnation),
      exited: (exit) => {
        if (r.incarnation !== incarnation || !r.up) return
        if (Exit.isFailure(exit)) {
          const why = Cause.pretty(exit.cause).split("\n")[0]!
          // A bot that cannot log in exits (its supervisor starts it again): the network, not a bug.
          if (!injected.test(why) && r.kind !== "bot") violations.errors.push(`${r.name}: the process exited: ${why}`)
          log(r.name, `EXITED: ${why}`)
        }
        if (r.kind === "client" || r.kind === "hostile" || r.kind === "intruder" || r.kind === "checker" || r.kind === "recorder") return
        // Its supervisor (bulletin up, compose) starts it again after a pause.
        stop(r)
        sched.after(1_000, () => {
          if (!r.up && sched.now < endMs) start(r)
        })
      },
    })
  }

  const stop = (r: Role) => {
    if (!r.up) return
    r.up = false
    net.crash(r.name)
    r.disk?.crash()
    r.view = undefined
    r.fiber?.interruptUnsafe()
    r.fiber = undefined
  }

  const crash = (name: string) => {
    const r = roles.get(name)
    if (r === undefined || !r.up) return
    const wasCoordinator = agreedOn === name
    stop(r)
    log(name, "CRASHED")
    if (wasCoordinator) coordinatorCrashes.push({ at: sched.now, newCoordinatorAfterMs: undefined })
  }
  const restart = (name: string) => {
    const r = roles.get(name)
    if (r !== undefined && !r.up) start(r)
  }

  // Causality on every request/reply pair: a reply is stamped after the request it answers.
  // Recording the monitoring channel taps what servers publish, without a
  // subscriber on the network: a run is the same whether it is recorded or not.
  net.tap = {
    published: (_host, topic, payload) => {
      net.count(`publications on ${topic === monitorTopic || topic === "replication" || topic === "servers" ? topic : "client topics"}`)
      if (monitoring === undefined || topic !== monitorTopic) return
      const report = decodeReport(payload)
      if (report === undefined) return
      // On the run's true time, not the server's own (skewed) clock: a replay scrubs one timeline.
      const shift = epochMs + sched.now - report.at
      monitoring.reports.push({ ...report, at: report.at + shift, transitions: report.transitions.map((t) => ({ ...t, at: t.at + shift })) })
    },
    replied: (host, request, reply) => {
      const req = decodeEnvelope(request)
      const rep = decodeEnvelope(reply)
      net.count(`replies to ${req.ok ? req.envelope.service : "undecodable requests"}`)
      const a = req.ok ? req.envelope.meta.clock : undefined
      const b = rep.ok ? rep.envelope.meta.clock : undefined
      // A clock refused as too far ahead is, by design, not adopted: its reply may be "before" it.
      const refusedClock = rep.ok && typeof rep.envelope.data.description === "string" && rep.envelope.data.description.includes("ahead of this server's Lamport clock")
      if (a !== undefined && !refusedClock && (b === undefined || b <= a)) violations.lamport.push(`${host} replied with clock ${b} to a request with clock ${a}${rep.ok ? "" : ` (${rep.description})`}`)
    },
  }

  // --- faults -------------------------------------------------------------------------
  const allNodes = [referenceName, proxyName, brokerName, ...names]
  const diskFullUntil = new Map<string, number>()
  const applyFault = (f: Fault) => {
    log("FAULT", describeFault(f))
    switch (f.kind) {
      case "partition": {
        const group = new Map<string, number>()
        f.groups.forEach((g, i) => g.forEach((n) => group.set(n, i)))
        for (const a of allNodes) for (const b of allNodes) if (a !== b && group.get(a) !== group.get(b)) net.cut(a, b)
        return
      }
      case "cut":
        net.cut(f.from, f.to)
        return
      case "heal":
        net.heal()
        return
      case "crash":
        return crash(f.node)
      case "restart":
        return restart(f.node)
      case "clockStep": {
        const r = roles.get(f.node)
        if (r !== undefined) r.clock.stepMs += f.ms
        return
      }
      case "diskFull": {
        const disk = roles.get(f.node)?.disk
        if (disk === undefined) return
        disk.setFull(true)
        const until = Math.max(diskFullUntil.get(f.node) ?? 0, sched.now + f.forMs)
        diskFullUntil.set(f.node, until)
        sched.at(until, () => {
          if (diskFullUntil.get(f.node) !== until) return
          disk.setFull(false)
          log("FAULT", `${f.node}'s disk has room again`)
        })
        return
      }
      case "diskError":
        roles.get(f.node)?.disk?.failNextWrite()
        return
    }
  }

  // --- checkers' sampling ---------------------------------------------------------------
  let agreedOn: string | undefined
  let agreedSince: number | undefined
  let roundsAfterAgreement = 0
  let clockSpreadMs: number | undefined
  let clockCheckFrom: number | undefined
  const live = () => servers().filter((s) => s.up && s.view?.coordination !== undefined)
  const rankOf = (name: string) => ranks?.ranks.find((r) => r.name === name)?.rank ?? 0
  /** The name every live server follows, if they agree and it leads; else undefined. */
  const agreement = (): string | undefined => {
    const nodes = live()
    if (nodes.length === 0 || nodes.length < servers().filter((s) => s.up).length) return undefined
    const first = nodes[0]!.view!.coordination!.coordinator?.name
    if (first === undefined) return undefined
    if (!nodes.every((s) => s.view!.coordination!.coordinator?.name === first)) return undefined
    const leader = roles.get(first)
    return leader?.up === true && leader.view?.coordination?.isCoordinator === true ? first : undefined
  }
  let sampling = true
  const sample = () => {
    const agreed = agreement()
    if (agreed !== agreedOn) {
      agreedOn = agreed
      agreedSince = agreed === undefined ? undefined : sched.now
      roundsAfterAgreement = 0
      clockCheckFrom = undefined
      if (agreed !== undefined) {
        log("CHECK", `all live servers agree: ${agreed} coordinates`)
        for (const k of coordinatorCrashes) if (k.newCoordinatorAfterMs === undefined) k.newCoordinatorAfterMs = sched.now - k.at
      }
    }
    if (agreed !== undefined && clockCheckFrom !== undefined && sched.now >= clockCheckFrom) {
      const nodes = live()
      const times = nodes.map((s) => s.view!.coordination!.now())
      if (times.length > 0) {
        const spread = Math.max(...times) - Math.min(...times)
        if (spread > (clockSpreadMs ?? 0) + 1) log("CHECK", `clock spread ${spread.toFixed(3)} ms: ${nodes.map((x, i) => `${x.name} ${(times[i]! - times[0]!).toFixed(1)}`).join(" ")}`)
        clockSpreadMs = Math.max(clockSpreadMs ?? 0, spread)
      }
    }
    sampling = sched.now + sampleEveryMs <= endMs
    if (sampling) sched.after(sampleEveryMs, sample)
  }

  // --- the run ---------------------------------------------------------------------------
  for (const name of [referenceName, brokerName, proxyName]) start(roles.get(name)!)
  for (const s of servers()) sched.after(prng.int(0, 500), () => start(s))
  for (const k of clientNames) sched.after(prng.int(500, 1_500), () => start(roles.get(k)!))
  for (const b of botNames) sched.after(prng.int(500, 1_500), () => start(roles.get(b)!))
  for (const h of hostileNames) sched.after(prng.int(500, 1_500), () => start(roles.get(h)!))
  for (const m of intruderNames) sched.after(prng.int(500, 1_500), () => start(roles.get(m)!))
  for (const f of scenario.faults) if (f.at < faultEndMs) sched.at(f.at, () => applyFault(f))
  sched.after(sampleEveryMs, sample)
  sched.at(faultEndMs, () => {
    log("HEAL", "network healed, crashed nodes restart, disks have room, clocks stop stepping; clients stop writing")
    net.heal()
    net.params = { delayMinMs: scenario.healDelayMinMs, delayMaxMs: scenario.healDelayMaxMs, dropRate: 0, duplicateRate: 0, reorderRate: 0 }
    for (const r of roles.values()) r.disk?.setFull(false)
    diskFullUntil.clear()
    for (const b of botNames) stop(roles.get(b)!)
    for (const name of [referenceName, brokerName, proxyName, ...names]) restart(name)
  })
  sched.runUntil(endMs, eventsMax)
  const checkWindowMs = 2 * c.roundIntervalMs
  while (options.waitForClockCheck !== false && endMs < faultEndMs + scenario.healPhaseMs + extensionMsMax && (clockCheckFrom === undefined || clockCheckFrom + checkWindowMs > endMs)) {
    endMs += 1_000
    if (sched.now + sampleEveryMs <= endMs && !sampling) sched.after(sampleEveryMs, sample)
    sched.runUntil(endMs, eventsMax)
  }

  // --- reading everything back through the broker ----------------------------------------
  const liveStores = () => servers().filter((s) => s.up && s.view !== undefined).map((s) => ({ name: s.name, store: s.view!.store }))
  const reads = readBack(liveStores(), ledger, names.length + 1)
  let readResult: ReadBack | undefined
  const checker = addRole("checker", "checker")
  // The checker may read u1's conversations: it logs in as u1 (it knows the password).
  start(
    checker,
    Effect.scoped(
      Effect.gen(function* () {
        const client = yield* makeClient({ ...clientConfig, attemptsMax: 5 })
        // Only if u1 tried to log in: the checker's own login must not write a user nobody asked for.
        if (clusterKey !== undefined && ledger.usersTried.has("u1")) yield* Effect.result(client.login("u1", simPassword))
        readResult = yield* reads(client)
      }),
    ),
  )
  for (let waited = 0; readResult === undefined && waited < 60_000; waited += 1_000) {
    endMs += 1_000
    sched.runUntil(endMs, eventsMax)
  }

  // --- verdicts --------------------------------------------------------------------------
  // Worst case after the heal: connections dropped during the partition are
  // dialled again, a restarted server registers, the reference forgets the
  // dead, followers notice a dead coordinator, an election waits out a dead
  // higher peer, and a stale leader hears the real one.
  const reconnectMs = net.connectTimeoutMs() + net.reconnectMs + 4 * scenario.healDelayMaxMs
  const agreementBoundMs =
    reconnectMs + c.startupTimeoutMs + c.registerRetryMs + c.requestTimeoutMs + serverDeadAfterMs + (c.livenessMax + 1) * c.heartbeatIntervalMs + c.electionTimeoutMs + 2 * c.coordinatorTimeoutMs + 2 * c.announceIntervalMs
  // A sample's offset is off by at most half the difference of the two
  // one-way delays; every corrected clock lands within that of the average,
  // so two clocks within twice that; then they drift apart until the next
  // round, and a correction may still be being slewed (up to the same again).
  const asymmetryMs = (scenario.healDelayMaxMs - scenario.healDelayMinMs) / 2
  const driftMax = Math.max(0, ...scenario.clocks.map((k) => Math.abs(k.driftPpm))) / 1e6
  const betweenRoundsMs = c.roundIntervalMs + c.pollTimeoutMs + 2 * scenario.healDelayMaxMs
  const clockBoundMs = 2 * (2 * asymmetryMs + 2 * driftMax * betweenRoundsMs) + 1
  const nodes = live()
  const highest = nodes.reduce<Role | undefined>((best, s) => (best === undefined || rankOf(s.name) > rankOf(best.name) ? s : best), undefined)
  const agreementAfterHealMs = agreedSince === undefined ? undefined : Math.max(0, agreedSince - faultEndMs)
  const requestBoundMs = clientConfig.attemptsMax * clientConfig.requestTimeoutMs + 1_000
  const unfinished = ledger.calls.filter((k) => k.endedAt === undefined && sched.now - k.startedAt > requestBoundMs)
  const longest = ledger.calls.reduce((m, k) => Math.max(m, (k.endedAt ?? sched.now) - k.startedAt), 0)
  const highs = net.highs().filter((h) => h.high > h.limit)
  // Each request may move a clock at most clientClockAheadMax (adopted within the window); far below clockMax.
  const clockHigh = Math.max(0, ...servers().flatMap((s) => (s.view === undefined ? [] : [s.view.lamport()])))
  const clockBound = 2 ** 40
  const intrudersRanked = (ranks?.ranks ?? []).map((r) => r.name).filter((n) => n.startsWith("mallory"))
  const refusedIntruders = [...net.counters].filter(([k]) => k.startsWith("connections refused")).reduce((n, [, v]) => n + v, 0)
  const checks: Array<Check> = [
    {
      name: "one coordinator after healing: the highest-ranked live server, known to all",
      ok: agreedOn !== undefined && agreedOn === highest?.name,
      detail: `agreed on ${agreedOn ?? "nobody"}; highest live is ${highest?.name} (rank ${highest === undefined ? "-" : rankOf(highest.name)}); views: ${nodes.map((s) => `${s.name}->${s.view!.coordination!.coordinator?.name ?? "?"}`).join(" ")}`,
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
    { name: "no handler, machine or role failed", ok: violations.errors.length === 0, detail: violations.errors.slice(0, 3).join("; ") || "none" },
    { name: "Lamport clocks respect causality", ok: violations.lamport.length === 0, detail: violations.lamport.slice(0, 3).join("; ") || "every send after its causes, every reply after its request" },
    {
      name: "no request waits for ever",
      ok: unfinished.length === 0,
      detail: unfinished.length === 0 ? `${ledger.calls.length} client requests, the longest ${longest.toFixed(0)} ms (bound ${requestBoundMs} ms)` : unfinished.slice(0, 3).map((k) => `${k.client} ${k.service} since ${k.startedAt.toFixed(0)} ms`).join("; "),
    },
    {
      name: "no queue past its limit",
      ok: highs.length === 0,
      detail: highs.length === 0 ? `${net.highs().length} queues watched; fullest ${fullest(net.highs())}` : highs.slice(0, 3).map((h) => `${h.name}: ${h.high} > ${h.limit}`).join("; "),
    },
    {
      name: "Lamport clocks stay far from their limit (no request can poison them)",
      ok: clockHigh < clockBound,
      detail: `highest server clock ${clockHigh} (bound ${clockBound}: ${hostileNames.length} hostile client(s))`,
    },
    {
      name: "intruders kept out: no rank, no request, no publication of theirs taken",
      ok: intruderNames.length === 0 || clusterKey === undefined || (intrudersRanked.length === 0 && refusedIntruders > 0),
      detail:
        intruderNames.length === 0
          ? "no intruder in this run"
          : clusterKey === undefined
            ? "open mode: not checked"
            : `${refusedIntruders} connections refused (not the cluster's key); ranked: ${intrudersRanked.join(" ") || "none"}`,
    },
    {
      name: "a client always reads its own acknowledged writes",
      ok: ledger.violations.length === 0,
      detail: ledger.violations.slice(0, 3).join("; ") || `${ledger.historyServed} history reads checked; ${ledger.historyRefused} refused as not caught up (then retried)`,
    },
    ...replicaChecks(liveStores(), ledger),
    ...(readResult === undefined ? [{ name: "the history read back through the broker", ok: false, detail: "the checker's reads did not finish" }] : readResult.checks),
  ]
  for (const check of checks) log("CHECK", `${check.ok ? "ok  " : "FAIL"} ${check.name}: ${check.detail}`)
  for (const r of roles.values()) stop(r)
  sched.runUntil(sched.now, eventsMax)
  const written = ledger.writes.length
  return {
    scenario,
    ok: checks.every((k) => k.ok),
    checks,
    timeline,
    monitoring: monitoring === undefined ? undefined : { ...monitoring, startAt: epochMs, endAt: epochMs + sched.now },
    stats: {
      events: sched.executed,
      messages: net.messages,
      agreementAfterHealMs,
      agreementBoundMs,
      coordinator: agreedOn,
      clockSpreadMs,
      clockBoundMs,
      roundsAfterAgreement,
      coordinatorCrashes,
      written,
      acknowledged: ledger.writes.filter((w) => w.acked === true).length,
      requests: ledger.calls.length,
      longestRequestMs: longest,
      catchUps,
      network: Object.fromEntries(net.counters),
    },
  }
}

const fullest = (highs: ReadonlyArray<{ name: string; high: number; limit: number }>) => {
  const top = [...highs].sort((a, b) => b.high / b.limit - a.high / a.limit)[0]
  return top === undefined ? "none" : `${top.name} ${top.high}/${top.limit}`
}

// --- the checks on replicas ------------------------------------------------------------------

interface Replica {
  readonly name: string
  readonly store: StoreShape
}

/** Every entry of a channel's or conversation's history in a replica, read from its store. */
const storeHistory = (store: StoreShape, query: { channel: string } | { user: string; peer: string }): Array<PostSeen> => {
  const out: Array<PostSeen> = []
  let after: [number, string, number] | number = 0
  for (let page = 0; page < 10_000; page++) {
    const p: HistoryPage = Effect.runSync(store.history({ ...query, after, limit: 500 }))
    for (const x of p.posts) out.push({ text: x.message, clock: x.clock, origin: x.origin, seq: x.seq })
    const last: Post | undefined = p.posts.at(-1)
    if (!p.more || last === undefined) break
    after = [last.clock, last.origin, last.seq]
  }
  return out
}

/** The conversations to read: every pair of users a private message was written between. */
const conversations = (ledger: Ledger) => {
  const pairs = new Map<string, { user: string; peer: string }>()
  for (const w of ledger.writes) if (w.kind === "message" && w.src !== undefined && w.dst !== undefined) pairs.set([w.src, w.dst].sort().join("\u0000"), { user: w.src, peer: w.dst })
  return [...pairs.values()].sort((a, b) => (a.user + a.peer < b.user + b.peer ? -1 : 1))
}

const isImpostor = (text: string) => /^impostor-\d+$/.test(text)

const isBotPost = (text: string) => /^[a-z]+ #\d+ from bot-[0-9a-z]{4}$/.test(text)

/**
 * Jepsen's set check for one kind of entry: every acknowledged write present
 * exactly once, and nothing present that no client wrote. Writes without an
 * answer may or may not be there (once at most).
 */
const setCheck = (present: ReadonlyArray<string>, acked: ReadonlyArray<Write>, tried: (key: string) => boolean, exact: (key: string) => boolean) => {
  const count = new Map<string, number>()
  for (const k of present) count.set(k, (count.get(k) ?? 0) + 1)
  const lost = [...new Set(acked.filter((w) => (count.get(w.key) ?? 0) === 0).map((w) => w.key))]
  const duplicated = [...count].filter(([k, n]) => n > 1 && exact(k)).map(([k]) => k)
  const phantom = [...count.keys()].filter((k) => !tried(k))
  return { lost, duplicated, phantom }
}

/**
 * On every live replica, read from its store: Jepsen's set check for posts,
 * private messages, users and channels; replicas identical (history order
 * included); and every origin's replication position converged.
 */
export const replicaChecks = (replicas: ReadonlyArray<Replica>, ledger: Ledger): Array<Check> => {
  const problems: Array<string> = []
  const digests = new Map<string, Array<string>>()
  const vectors = new Map<string, Array<string>>()
  const stuck: Array<string> = []
  const postsTried = new Set(ledger.writes.filter((w) => w.kind === "post").map((w) => w.key))
  const messagesTried = new Set(ledger.writes.filter((w) => w.kind === "message").map((w) => w.key))
  const written = new Set(ledger.writes.flatMap((w) => (w.channel === undefined ? [] : [w.channel])))
  for (const r of replicas) {
    // Every channel the replica knows, and every one a client posted to (a post in a channel it lacks must still be found).
    const channels = [...new Set([...r.store.channels(), ...written])].sort()
    const posts = channels.flatMap((channel) => storeHistory(r.store, { channel }).map((p) => ({ ...p, where: channel })))
    const messages = conversations(ledger).flatMap((q) => storeHistory(r.store, q).map((p) => ({ ...p, where: `${q.user}/${q.peer}` })))
    const kinds = [
      // An impostor's post (the hostile client's, as u1) can land only on a server the claim had not reached yet.
      { what: "posts", ...setCheck(posts.map((p) => p.text), ledger.acked("post"), (k) => postsTried.has(k) || isBotPost(k) || isImpostor(k), (k) => !isBotPost(k) && !isImpostor(k)) },
      { what: "private messages", ...setCheck(messages.map((p) => p.text), ledger.acked("message"), (k) => messagesTried.has(k) || isImpostor(k), (k) => !isImpostor(k)) },
      { what: "users", ...setCheck(r.store.users(), ledger.acked("user"), (k) => ledger.usersTried.has(k) || /^bot-[0-9a-z]{4}$/.test(k), () => true) },
      { what: "channels", ...setCheck(r.store.channels(), ledger.acked("channel"), (k) => ledger.channelsTried.has(k) || k === "general", () => true) },
    ]
    for (const k of kinds) {
      if (k.lost.length + k.duplicated.length + k.phantom.length === 0) continue
      const sample = (xs: ReadonlyArray<string>) => (xs.length === 0 ? "" : ` (${xs.slice(0, 3).join(", ")})`)
      problems.push(`${r.name} ${k.what}: ${k.lost.length} lost${sample(k.lost)}, ${k.duplicated.length} duplicated${sample(k.duplicated)}, ${k.phantom.length} never written${sample(k.phantom)}`)
    }
    const digest = [
      r.store.users().join(","),
      channels.join(","),
      ...posts.map((p) => `${p.where}/${p.clock}/${p.origin}/${p.seq}/${p.text}`),
      ...messages.map((p) => `${p.where}/${p.clock}/${p.origin}/${p.seq}/${p.text}`),
    ].join("|")
    digests.set(digest, [...(digests.get(digest) ?? []), r.name])
    const vector = r.store.vector()
    for (const origin of r.store.origins()) if ((vector.get(origin) ?? 0) < r.store.lastSeq(origin)) stuck.push(`${r.name} holds ${origin} up to ${vector.get(origin) ?? 0} of ${r.store.lastSeq(origin)}`)
    const v = JSON.stringify([...vector].sort(([a], [b]) => (a < b ? -1 : 1)))
    vectors.set(v, [...(vectors.get(v) ?? []), r.name])
  }
  const counts = (["post", "message", "user", "channel"] as const).map((k) => `${ledger.acked(k).length}/${ledger.writes.filter((w) => w.kind === k).length} ${k}s`).join(", ")
  return [
    {
      name: "every acknowledged write on every live replica exactly once, nothing never written",
      ok: problems.length === 0,
      detail: problems.slice(0, 3).join("; ") || `acknowledged/written: ${counts}; all present once on ${replicas.length} replicas`,
    },
    {
      name: "replicas identical after quiescence",
      ok: digests.size <= 1,
      detail: digests.size <= 1 ? (digests.size === 1 ? "one digest" : "no replicas") : [...digests.values()].map((n) => `{${n.join(" ")}}`).join(" differ from "),
    },
    {
      name: "every origin's replication position converged on every replica",
      ok: stuck.length === 0 && vectors.size <= 1,
      detail: stuck.slice(0, 3).join("; ") || (vectors.size <= 1 ? "one vector, with no gaps" : [...vectors].map(([v, n]) => `{${n.join(" ")}} ${v}`).join(" vs ")),
    },
  ]
}

interface ReadBack {
  readonly checks: ReadonlyArray<Check>
}

/**
 * What a client reads back through the broker once everything healed: each
 * channel and conversation, paged from the start, `times` times (so the
 * broker's round-robin puts every server behind some read); every read must
 * be the same, in the same order, and agree with the replicas' own order.
 */
const readBack = (replicas: ReadonlyArray<Replica>, ledger: Ledger, times: number) => (client: import("../actors/client.ts").BulletinClient) =>
  Effect.gen(function* () {
    const expected = replicas[0] === undefined ? undefined : replicas[0].store
    const queries: Array<Record<string, unknown>> = [
      ...(expected?.channels() ?? []).map((channel) => ({ channel })),
      ...conversations(ledger).map((q) => ({ user: q.user, peer: q.peer })),
    ]
    const problems: Array<string> = []
    let reads = 0
    for (const q of queries) {
      const want = expected === undefined ? undefined : storeHistory(expected, q as { channel: string }).map((p) => `${p.clock}/${p.origin}/${p.seq}/${p.text}`).join("|")
      for (let i = 0; i < times; i++) {
        const got = yield* readAll(client, q)
        reads += 1
        if (got === undefined) {
          problems.push(`${JSON.stringify(q)}: read ${i + 1} failed`)
          continue
        }
        const text = got.map((p) => `${p.clock}/${p.origin}/${p.seq}/${p.text}`).join("|")
        if (want !== undefined && text !== want) problems.push(`${JSON.stringify(q)}: read ${i + 1} differs from the replicas (${got.length} entries)`)
      }
    }
    return {
      checks: [
        {
          name: "the history read back through the broker: complete, the same on every read, in the replicas' order",
          ok: problems.length === 0,
          detail: problems.slice(0, 3).join("; ") || `${queries.length} histories read ${times} times each (${reads} reads)`,
        },
      ],
    } satisfies ReadBack
  })
