import { assign, emit, enqueueActions, setup } from "xstate"

/**
 * When a server pulls missing operations from its peers: the ZeroMQ guide's
 * Clone pattern, multi-master. Every server publishes its own ops live; a
 * receiver that sees a gap in an origin's sequence, or that was away, pulls
 * "everything after my vector" from a peer (the host carries the pull out:
 * it sends its vector, applies the ops in the reply, and reports back). The
 * machine decides whom to pull from and when, and when the server may serve
 * history again.
 *
 * States:
 *   starting    waiting for the first peer list
 *   catchingUp  pulling from each peer in `pending` until it has nothing
 *               more for us (or fails); history is held back meanwhile
 *   live        history served; a pull every syncInterval (anti-entropy,
 *               round robin), and at once on a gap
 *
 * Events in:
 *   PEERS { peers }          the other live servers (from the reference)
 *   GAP { origin }           an op arrived past a hole in `origin`'s sequence
 *   PULLED { peer, more }    a pull's reply was applied; `more`: the peer had more
 *   PULL_FAILED { peer }     no reply, or an error
 *   REJOINED                 this server was cut off (lost the reference) and is back
 * Intents out:
 *   pull { peer }            send our vector to `peer`, apply what it returns
 *   ready { caughtUp }       serve history (caughtUp false: gave up waiting)
 *   catchingUp               hold history back
 * Delays: syncInterval, syncTimeout (a pull's reply), catchUpTimeout (the
 *   longest history is held back without a pull answered: a catch-up that
 *   progresses is never cut short), startupTimeout (no peer list: alone)
 */
export interface ReplicationInput {
  readonly self: string
  readonly syncIntervalMs: number
  readonly syncTimeoutMs: number
  readonly catchUpTimeoutMs: number
  readonly startupTimeoutMs: number
}

export interface ReplicationContext extends ReplicationInput {
  readonly peers: ReadonlyArray<string>
  /** Peers still to pull from before catching up is done. */
  readonly pending: ReadonlyArray<string>
  /** The peer of the pull in flight. */
  readonly target: string | undefined
  /** Round-robin position for anti-entropy pulls. */
  readonly turn: number
  /** A gap was seen while a pull was in flight: pull again after it. */
  readonly again: string | undefined
}

export type ReplicationEvent =
  | { readonly type: "PEERS"; readonly peers: ReadonlyArray<string> }
  | { readonly type: "GAP"; readonly origin: string }
  | { readonly type: "PULLED"; readonly peer: string; readonly more: boolean }
  | { readonly type: "PULL_FAILED"; readonly peer: string }
  | { readonly type: "REJOINED" }
  /** Internal: raised catchUpTimeout after the last answered pull of a catch-up (or its start). */
  | { readonly type: "CATCH_UP_STALLED" }

export type ReplicationEmitted =
  | { readonly type: "pull"; readonly peer: string }
  | { readonly type: "ready"; readonly caughtUp: boolean }
  | { readonly type: "catchingUp" }

export const replicationDefaults: ReplicationInput = { self: "", syncIntervalMs: 2_000, syncTimeoutMs: 1_500, catchUpTimeoutMs: 10_000, startupTimeoutMs: 3_000 }

const stallTimer = "catchUpStall"

const newPeers = (context: ReplicationContext, event: ReplicationEvent) =>
  event.type === "PEERS" ? event.peers.filter((p) => p !== context.self && !context.peers.includes(p)) : []

export const replicationMachine = setup({
  types: {
    context: {} as ReplicationContext,
    input: {} as ReplicationInput,
    events: {} as ReplicationEvent,
    emitted: {} as ReplicationEmitted,
  },
  delays: {
    syncInterval: ({ context }) => context.syncIntervalMs,
    syncTimeout: ({ context }) => context.syncTimeoutMs,
    catchUpTimeout: ({ context }) => context.catchUpTimeoutMs,
    startupTimeout: ({ context }) => context.startupTimeoutMs,
  },
  guards: {
    nothingPending: ({ context }) => context.pending.length === 0,
    fromTarget: ({ context, event }) => (event.type === "PULLED" || event.type === "PULL_FAILED") && event.peer === context.target,
    /** The target has more for us, and is still a live peer (one dropped meanwhile is not asked again). */
    targetHasMore: ({ context, event }) => event.type === "PULLED" && event.peer === context.target && event.more && context.peers.includes(event.peer),
    noPeers: ({ context }) => context.peers.length === 0,
    hasNewPeers: ({ context, event }) => newPeers(context, event).length > 0,
    againPending: ({ context }) => context.again !== undefined && context.peers.length > 0,
  },
  actions: {
    setPeers: assign(({ context, event }) => {
      if (event.type !== "PEERS") return {}
      const peers = event.peers.filter((p) => p !== context.self)
      return { peers, pending: context.pending.filter((p) => peers.includes(p)) }
    }),
    pendAll: assign({ pending: ({ context }) => context.peers }),
    pendNew: assign({ pending: ({ context, event }) => [...context.pending, ...newPeers(context, event).filter((p) => !context.pending.includes(p))] }),
    targetPending: assign({ target: ({ context }) => context.pending[0] }),
    dropTarget: assign({ pending: ({ context }) => context.pending.filter((p) => p !== context.target) }),
    /** Anti-entropy: the next peer in turn. */
    targetNext: assign(({ context }) => ({ target: context.peers[context.turn % Math.max(1, context.peers.length)], turn: context.turn + 1 })),
    /** A gap: pull from its origin if it is a live peer (it surely has its own ops), else from the next peer. */
    targetGap: assign(({ context, event }) => {
      const origin = event.type === "GAP" && context.peers.includes(event.origin) ? event.origin : undefined
      return origin !== undefined ? { target: origin } : { target: context.peers[context.turn % Math.max(1, context.peers.length)], turn: context.turn + 1 }
    }),
    rememberGap: assign({ again: ({ context, event }) => (event.type === "GAP" ? event.origin : context.again) }),
    targetAgain: assign(({ context }) =>
      context.again !== undefined && context.peers.includes(context.again)
        ? { target: context.again, again: undefined }
        : { target: context.peers[context.turn % Math.max(1, context.peers.length)], turn: context.turn + 1, again: undefined },
    ),
    pull: emit(({ context }) => ({ type: "pull" as const, peer: context.target ?? "" })),
    ready: emit({ type: "ready" as const, caughtUp: true }),
    gaveUp: emit({ type: "ready" as const, caughtUp: false }),
    holdBack: emit({ type: "catchingUp" as const }),
    /** (Re)starts the stall timer: a catch-up that progresses is never cut short. */
    armStall: enqueueActions(({ enqueue }) => {
      enqueue.cancel(stallTimer)
      enqueue.raise({ type: "CATCH_UP_STALLED" }, { id: stallTimer, delay: "catchUpTimeout" })
    }),
    disarmStall: enqueueActions(({ enqueue }) => enqueue.cancel(stallTimer)),
  },
}).createMachine({
  id: "replication",
  // Defaults under the input: a host (or xstate's pure API) that passes none gets a working machine, not a loop of 0 ms delays.
  context: ({ input }) => ({ ...replicationDefaults, ...input, peers: [], pending: [], target: undefined, turn: 0, again: undefined }),
  initial: "starting",
  states: {
    starting: {
      on: { PEERS: { target: "catchingUp", actions: ["setPeers", "pendAll"] } },
      after: { startupTimeout: { target: "live", actions: "ready" } },
    },
    catchingUp: {
      entry: ["holdBack", "armStall"],
      exit: "disarmStall",
      initial: "next",
      on: {
        PEERS: { actions: ["pendNew", "setPeers"] },
        CATCH_UP_STALLED: { target: "live", actions: "gaveUp" },
      },
      states: {
        next: {
          always: [{ guard: "nothingPending", target: "#replication.live", actions: "ready" }, { target: "pulling", actions: "targetPending" }],
        },
        pulling: {
          entry: "pull",
          on: {
            PULLED: [
              { guard: "targetHasMore", target: "pulling", reenter: true, actions: "armStall" },
              { guard: "fromTarget", target: "next", actions: ["dropTarget", "armStall"] },
            ],
            PULL_FAILED: { guard: "fromTarget", target: "next", actions: "dropTarget" },
          },
          after: { syncTimeout: { target: "next", actions: "dropTarget" } },
        },
      },
    },
    live: {
      initial: "idle",
      on: {
        REJOINED: { target: "catchingUp", actions: "pendAll" },
        PEERS: [
          // Peers we could not see (a healed partition, a restart): what they
          // wrote meanwhile may have reached nobody else. Catch up first.
          { guard: "hasNewPeers", target: "catchingUp", actions: ["pendNew", "setPeers"] },
          { actions: "setPeers" },
        ],
      },
      states: {
        idle: {
          on: { GAP: [{ guard: "noPeers" }, { target: "pulling", actions: "targetGap" }] },
          after: { syncInterval: [{ guard: "noPeers", target: "idle", reenter: true }, { target: "pulling", actions: "targetNext" }] },
        },
        pulling: {
          entry: "pull",
          on: {
            GAP: { actions: "rememberGap" },
            PULLED: [
              { guard: "targetHasMore", target: "pulling", reenter: true },
              { guard: "fromTarget", target: "done" },
            ],
            PULL_FAILED: { guard: "fromTarget", target: "done" },
          },
          after: { syncTimeout: "done" },
        },
        done: {
          always: [{ guard: "againPending", target: "pulling", actions: "targetAgain" }, { target: "idle" }],
        },
      },
    },
  },
})
