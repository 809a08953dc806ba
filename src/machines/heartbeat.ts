import { assign, emit, setup } from "xstate"

/**
 * Failure detector in the spirit of the ZeroMQ guide's Paranoid Pirate: ping
 * the target every `intervalMs`; every interval without a pong costs one unit
 * of liveness; at zero the target is declared down. A pong while down brings
 * it back up at once.
 *
 * Events in:  PONG (the target answered a ping)
 * Intents out (emitted): ping (ask the target, with a timeout of at most one
 *   interval), down (the target stopped answering), up (it answers again)
 * Delays: interval (context.intervalMs)
 */
export interface HeartbeatInput {
  readonly intervalMs: number
  /** Missed intervals in a row before the target is declared down (the guide uses 3). */
  readonly livenessMax: number
}

export interface HeartbeatContext extends HeartbeatInput {
  readonly liveness: number
  /** A pong arrived in the current interval. */
  readonly answered: boolean
}

export type HeartbeatEvent = { readonly type: "PONG" }
export type HeartbeatEmitted = { readonly type: "ping" } | { readonly type: "down" } | { readonly type: "up" }

/** What a machine created without an input runs with (never 0 ms delays). */
export const heartbeatDefaults: HeartbeatInput = { intervalMs: 1_000, livenessMax: 3 }

export const heartbeatMachine = setup({
  types: {
    context: {} as HeartbeatContext,
    input: {} as HeartbeatInput,
    events: {} as HeartbeatEvent,
    emitted: {} as HeartbeatEmitted,
  },
  delays: {
    interval: ({ context }) => context.intervalMs,
  },
  guards: {
    answered: ({ context }) => context.answered,
    lastChance: ({ context }) => context.liveness <= 1,
  },
  actions: {
    ping: emit({ type: "ping" }),
    reportDown: emit({ type: "down" }),
    reportUp: emit({ type: "up" }),
    noteAnswer: assign({ answered: true }),
    refill: assign(({ context }) => ({ liveness: context.livenessMax, answered: false })),
    spend: assign(({ context }) => ({ liveness: context.liveness - 1, answered: false })),
  },
}).createMachine({
  id: "heartbeat",
  context: ({ input }) => {
    const i = { ...heartbeatDefaults, ...input }
    return { ...i, liveness: i.livenessMax, answered: false }
  },
  initial: "up",
  states: {
    up: {
      entry: "ping",
      on: { PONG: { actions: "noteAnswer" } },
      after: {
        interval: [
          { guard: "answered", target: "up", reenter: true, actions: "refill" },
          { guard: "lastChance", target: "down", actions: ["spend", "reportDown"] },
          { target: "up", reenter: true, actions: "spend" },
        ],
      },
    },
    down: {
      initial: "probing",
      on: { PONG: { target: "up", actions: ["refill", "reportUp"] } },
      states: {
        probing: {
          entry: "ping",
          after: { interval: { target: "probing", reenter: true } },
        },
      },
    },
  },
})
