import { assign, emit, enqueueActions, setup } from "xstate"

/**
 * Berkeley clock synchronisation (Gusella & Zatti 1989), run by the elected
 * coordinator. Each round it polls every server's clock; the host turns each
 * reply into a sample: the peer's offset from the coordinator's clock,
 * compensated for half the round trip. The coordinator averages the offsets
 * (its own is 0) after dropping outliers further than `toleranceMs` from the
 * median, and sends each server the signed correction that brings it to the
 * average (faulty clocks are corrected too, they just do not vote).
 *
 * States: inactive (not coordinator) | idle -> polling -> idle ...
 * Events in: LEAD, FOLLOW (the election's outcome), PEERS { peers },
 *   SYNC_NOW (a round now: the standard's "every 10 messages"),
 *   SAMPLE { peer, offsetMs, rttMs }
 * Intents out: poll { round, peers }, adjust { round, peer, offsetMs }
 *   (peer may be the coordinator itself), roundDone { round, used, dropped }
 * Delays: roundInterval, pollTimeout, roundSpacing (the least time between
 *   two rounds, so SYNC_NOW cannot flood the cluster)
 */
export interface ClockSample {
  readonly peer: string
  /** The peer's clock minus ours, estimated at the middle of the round trip. */
  readonly offsetMs: number
  readonly rttMs: number
}

export interface Adjustment {
  readonly peer: string
  readonly offsetMs: number
}

/**
 * The fault-tolerant average. `self` is the coordinator's name (offset 0).
 * Samples whose round trip exceeds `rttMaxMs` are not trusted to vote either.
 */
export const berkeleyAdjustments = (self: string, samples: ReadonlyArray<ClockSample>, toleranceMs: number, rttMaxMs: number) => {
  const all = [{ peer: self, offsetMs: 0, rttMs: 0 }, ...samples.filter((s) => s.peer !== self)]
  const sorted = all.map((s) => s.offsetMs).sort((a, b) => a - b)
  const mid = sorted.length >> 1
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
  const agreeing = all.filter((s) => Math.abs(s.offsetMs - median) <= toleranceMs && s.rttMs <= rttMaxMs)
  // Nobody near the median (two clocks far apart, say): nothing says which is
  // right, so the coordinator's own clock is the reference. Never divide by 0.
  const voters = agreeing.length > 0 ? agreeing : all.slice(0, 1)
  const average = voters.reduce((sum, s) => sum + s.offsetMs, 0) / voters.length
  return {
    adjustments: all.map((s): Adjustment => ({ peer: s.peer, offsetMs: average - s.offsetMs })),
    used: voters.length,
    dropped: all.length - voters.length,
  }
}

export interface BerkeleyInput {
  readonly self: string
  readonly roundIntervalMs: number
  readonly pollTimeoutMs: number
  readonly roundSpacingMs: number
  readonly toleranceMs: number
  readonly rttMaxMs: number
}

export interface BerkeleyContext extends BerkeleyInput {
  readonly peers: ReadonlyArray<string>
  readonly samples: ReadonlyArray<ClockSample>
  readonly round: number
}

export type BerkeleyEvent =
  | { readonly type: "LEAD" }
  | { readonly type: "FOLLOW" }
  | { readonly type: "PEERS"; readonly peers: ReadonlyArray<string> }
  | { readonly type: "SYNC_NOW" }
  | ({ readonly type: "SAMPLE"; readonly round: number } & ClockSample)

export type BerkeleyEmitted =
  | { readonly type: "poll"; readonly round: number; readonly peers: ReadonlyArray<string> }
  | { readonly type: "adjust"; readonly round: number; readonly peer: string; readonly offsetMs: number }
  | { readonly type: "roundDone"; readonly round: number; readonly used: number; readonly dropped: number }

/** What a machine created without an input runs with (never 0 ms delays). */
export const berkeleyDefaults: BerkeleyInput = { self: "", roundIntervalMs: 5_000, pollTimeoutMs: 800, roundSpacingMs: 1_000, toleranceMs: 1_000, rttMaxMs: 400 }

export const berkeleyMachine = setup({
  types: {
    context: {} as BerkeleyContext,
    input: {} as BerkeleyInput,
    events: {} as BerkeleyEvent,
    emitted: {} as BerkeleyEmitted,
  },
  delays: {
    roundInterval: ({ context }) => context.roundIntervalMs,
    pollTimeout: ({ context }) => context.pollTimeoutMs,
    roundSpacing: ({ context }) => context.roundSpacingMs,
  },
  guards: {
    allAnswered: ({ context }) => context.peers.every((p) => context.samples.some((s) => s.peer === p)),
    currentRound: ({ context, event }) => event.type === "SAMPLE" && event.round === context.round && context.peers.includes(event.peer),
  },
  actions: {
    setPeers: assign({ peers: ({ context, event }) => (event.type === "PEERS" ? event.peers.filter((p) => p !== context.self) : context.peers) }),
    startRound: assign(({ context }) => ({ round: context.round + 1, samples: [] })),
    poll: emit(({ context }) => ({ type: "poll" as const, round: context.round, peers: context.peers })),
    record: assign({
      samples: ({ context, event }) => (event.type === "SAMPLE" ? [...context.samples.filter((s) => s.peer !== event.peer), { peer: event.peer, offsetMs: event.offsetMs, rttMs: event.rttMs }] : context.samples),
    }),
    adjust: enqueueActions(({ context, enqueue }) => {
      const { adjustments, used, dropped } = berkeleyAdjustments(context.self, context.samples, context.toleranceMs, context.rttMaxMs)
      for (const a of adjustments) enqueue.emit({ type: "adjust", round: context.round, peer: a.peer, offsetMs: a.offsetMs })
      enqueue.emit({ type: "roundDone", round: context.round, used, dropped })
    }),
  },
}).createMachine({
  id: "berkeley",
  context: ({ input }) => ({ ...berkeleyDefaults, ...input, peers: [], samples: [], round: 0 }),
  initial: "inactive",
  on: {
    PEERS: { actions: "setPeers" },
    FOLLOW: ".inactive",
  },
  states: {
    inactive: {
      on: { LEAD: "active" },
    },
    active: {
      initial: "polling",
      states: {
        // Right after a round: SYNC_NOW is ignored until the spacing passes.
        resting: {
          after: { roundSpacing: "idle" },
        },
        idle: {
          on: { SYNC_NOW: "polling" },
          after: { roundInterval: "polling" },
        },
        polling: {
          entry: ["startRound", "poll"],
          always: { guard: "allAnswered", target: "resting", actions: "adjust" },
          on: { SAMPLE: { guard: "currentRound", actions: "record" } },
          after: { pollTimeout: { target: "resting", actions: "adjust" } },
        },
      },
    },
  },
})
