import { assign, emit, enqueueActions, setup } from "xstate"
import type { Term } from "./term.ts"

/**
 * Bully election (Garcia-Molina 1982): the live server with the highest rank
 * is coordinator. Terms (epoch, rank) make announcements comparable, so a
 * stale coordinator (from the other side of a healed partition, or a delayed
 * message) is recognised and steps down.
 *
 * States: starting (waiting for the first peer list) -> electing -> waiting
 * (a higher server answered; wait for its announcement) -> leader | follower.
 *
 * Events in:
 *   PEERS { peers }             the other servers (from the reference's list)
 *   ELECTION { from, rank, term? }  a lower server's election request (the
 *                               host has already answered it OK)
 *   OK { from, term? }          a higher server answered our election
 *   ANNOUNCE { coordinator, rank, term }  heard on topic `servers` (our own too)
 *   COORDINATOR_DOWN { name }   the failure detector lost the coordinator
 *   TERM { term }               a term heard in passing (a follower's ping
 *                               names the term it follows): a leader that
 *                               restarted and forgot its terms re-claims above
 * Intents out (emitted):
 *   sendElection { to, term }   ask a higher-ranked peer
 *   announce { term }           publish "I am coordinator" on `servers`
 *   coordinatorChanged { coordinator?: { name, rank, term }, self }
 * Delays: electionTimeout (wait for OKs), coordinatorTimeout (wait for the
 *   winner's announcement), announceInterval (a leader re-announces, so late
 *   joiners and healed partitions learn it), startupTimeout (elect even with
 *   no peer list).
 */
export interface Peer {
  readonly name: string
  readonly rank: number
}

export interface Coordinator extends Peer {
  readonly term: Term
}

export interface BullyInput {
  readonly self: Peer
  readonly electionTimeoutMs: number
  readonly coordinatorTimeoutMs: number
  readonly announceIntervalMs: number
  readonly startupTimeoutMs: number
}

export interface BullyContext extends BullyInput {
  readonly peers: ReadonlyArray<Peer>
  readonly coordinator: Coordinator | undefined
  /** The highest term seen or claimed. */
  readonly term: Term
  /** The last term we claimed: while electing, only a newer announcement from above settles it. */
  readonly claimed: Term
}

export type BullyEvent =
  | { readonly type: "PEERS"; readonly peers: ReadonlyArray<Peer> }
  | { readonly type: "ELECTION"; readonly from: string; readonly rank: number; readonly term?: Term | undefined }
  | { readonly type: "OK"; readonly from: string; readonly term?: Term | undefined }
  | { readonly type: "ANNOUNCE"; readonly coordinator: string; readonly rank: number; readonly term: Term }
  | { readonly type: "COORDINATOR_DOWN"; readonly name: string }
  | { readonly type: "TERM"; readonly term: Term }

export type BullyEmitted =
  | { readonly type: "sendElection"; readonly to: string; readonly term: Term }
  | { readonly type: "announce"; readonly term: Term }
  | { readonly type: "coordinatorChanged"; readonly coordinator: Coordinator | undefined; readonly self: boolean }

const later = (a: Term, b: Term) => a.epoch > b.epoch || (a.epoch === b.epoch && a.rank > b.rank)
const maxTerm = (a: Term, b: Term | undefined) => (b !== undefined && later(b, a) ? b : a)

type Announce = Extract<BullyEvent, { type: "ANNOUNCE" }>

/** Follow the announcer: note its term, take it as coordinator, tell the host. */
const followIt = ["learnTerm", "follow", "notifyChanged"] as const
/** A leader that heard of a newer term: claim above it, lead under it, say so. */
const reclaim = ["learnTerm", "claimTerm", "becomeCoordinator", "notifyChanged", "announce"] as const

/** What a machine created without an input runs with (never 0 ms delays). */
export const bullyDefaults: BullyInput = { self: { name: "", rank: 0 }, electionTimeoutMs: 1_000, coordinatorTimeoutMs: 3_000, announceIntervalMs: 2_000, startupTimeoutMs: 3_000 }

export const bullyMachine = setup({
  types: {
    context: {} as BullyContext,
    input: {} as BullyInput,
    events: {} as BullyEvent,
    emitted: {} as BullyEmitted,
  },
  delays: {
    electionTimeout: ({ context }) => context.electionTimeoutMs,
    coordinatorTimeout: ({ context }) => context.coordinatorTimeoutMs,
    announceInterval: ({ context }) => context.announceIntervalMs,
    startupTimeout: ({ context }) => context.startupTimeoutMs,
  },
  guards: {
    noHigherPeers: ({ context }) => !context.peers.some((p) => p.rank > context.self.rank),
    fromSelf: ({ context, event }) => (event as Announce).coordinator === context.self.name,
    /** Newer than the coordinator we follow (or we follow none). */
    newer: ({ context, event }) => {
      const e = event as Announce
      return context.coordinator === undefined || later(e.term, context.coordinator.term)
    },
    /** Newer, and by a server ranked above us: accept it. */
    newerFromHigher: ({ context, event }) => {
      const e = event as Announce
      return e.rank > context.self.rank && (context.coordinator === undefined || later(e.term, context.coordinator.term))
    },
    /**
     * Electing or waiting: an announcement from above that is newer than our
     * claim. (A late re-announce of the coordinator we just declared down is
     * older, and must not make us follow a dead server.)
     */
    newerThanClaimFromHigher: ({ context, event }) => {
      const e = event as Announce
      return e.rank > context.self.rank && later(e.term, context.claimed)
    },
    fromLower: ({ context, event }) => (event as Announce).rank < context.self.rank,
    isCoordinatorDown: ({ context, event }) =>
      event.type === "COORDINATOR_DOWN" && context.coordinator !== undefined && context.coordinator.name === event.name,
    /** A leader hears of a term above the one it leads under. */
    outdated: ({ context, event }) =>
      "term" in event && event.term !== undefined && context.coordinator !== undefined && later(event.term, context.coordinator.term),
    /**
     * A leader hears of a newer term claimed by a server ranked above it (a
     * follower's ping, a refused clockAdjust, an election or OK carrying it):
     * that server leads, or tried to. Claiming above it would start a term
     * race with a server that must win; hold an election instead.
     */
    outdatedByHigher: ({ context, event }) =>
      "term" in event && event.term !== undefined && event.term.rank > context.self.rank && context.coordinator !== undefined && later(event.term, context.coordinator.term),
    fromLowerRank: ({ context, event }) => event.type === "ELECTION" && event.rank < context.self.rank,
  },
  actions: {
    setPeers: assign({ peers: ({ event }) => (event.type === "PEERS" ? event.peers : []) }),
    learnTerm: assign({
      term: ({ context, event }) => ("term" in event && event.term !== undefined ? maxTerm(context.term, event.term) : context.term),
    }),
    /** A new epoch above everything seen, claimed with our own rank. */
    claimTerm: assign(({ context }) => {
      const term = { epoch: context.term.epoch + 1, rank: context.self.rank }
      return { term, claimed: term }
    }),
    /**
     * Leading under a term learned from someone else (heard while electing)
     * would reuse their term: claim a new one above it.
     */
    ownTerm: assign(({ context }) => {
      const term = context.term.rank === context.self.rank ? context.term : { epoch: context.term.epoch + 1, rank: context.self.rank }
      return { term, claimed: term }
    }),
    sendElections: enqueueActions(({ context, enqueue }) => {
      for (const p of context.peers) if (p.rank > context.self.rank) enqueue.emit({ type: "sendElection", to: p.name, term: context.term })
    }),
    becomeCoordinator: assign({ coordinator: ({ context }) => ({ ...context.self, term: context.term }) }),
    follow: assign({
      coordinator: ({ event }) => {
        const e = event as Announce
        return { name: e.coordinator, rank: e.rank, term: e.term }
      },
    }),
    forgetCoordinator: assign({ coordinator: undefined }),
    /** Announce the term we lead under (context.term may since have been raised by what we heard). */
    announce: emit(({ context }) => ({ type: "announce" as const, term: context.coordinator?.term ?? context.term })),
    notifyChanged: emit(({ context }) => ({
      type: "coordinatorChanged" as const,
      coordinator: context.coordinator,
      self: context.coordinator?.name === context.self.name,
    })),
  },
}).createMachine({
  id: "bully",
  context: ({ input }) => ({ ...bullyDefaults, ...input, peers: [], coordinator: undefined, term: { epoch: 0, rank: 0 }, claimed: { epoch: 0, rank: 0 } }),
  initial: "starting",
  on: {
    PEERS: { actions: "setPeers" },
    TERM: { actions: "learnTerm" },
  },
  states: {
    starting: {
      on: {
        PEERS: { target: "electing", actions: "setPeers" },
        ANNOUNCE: [
          { guard: "fromSelf" },
          { guard: "newerFromHigher", target: "follower", actions: followIt },
          { actions: "learnTerm" },
        ],
        ELECTION: { actions: "learnTerm" },
        OK: { actions: "learnTerm" },
      },
      after: { startupTimeout: "electing" },
    },
    electing: {
      // Electing, we follow nobody: any newer announcement from above settles it.
      entry: ["claimTerm", "forgetCoordinator", "notifyChanged", "sendElections"],
      always: { guard: "noHigherPeers", target: "leader" },
      on: {
        OK: { target: "waiting", actions: "learnTerm" },
        ELECTION: { actions: "learnTerm" },
        ANNOUNCE: [
          { guard: "fromSelf" },
          { guard: "newerThanClaimFromHigher", target: "follower", actions: followIt },
          { actions: "learnTerm" },
        ],
      },
      after: { electionTimeout: "leader" },
    },
    waiting: {
      on: {
        OK: { actions: "learnTerm" },
        ELECTION: { actions: "learnTerm" },
        ANNOUNCE: [
          { guard: "fromSelf" },
          { guard: "newerThanClaimFromHigher", target: "follower", actions: followIt },
          // A lower server claims it while we wait for a higher one: the higher
          // one's announcement will supersede it; take note of its term only.
          { actions: "learnTerm" },
        ],
      },
      after: { coordinatorTimeout: "electing" },
    },
    leader: {
      entry: ["ownTerm", "becomeCoordinator", "notifyChanged"],
      initial: "announcing",
      states: {
        announcing: {
          entry: "announce",
          after: { announceInterval: { target: "announcing", reenter: true } },
        },
      },
      on: {
        // A lower server is electing: it will hear us. Say it now, under a
        // term above any it has claimed, or it (and whoever heard it) would
        // take our announcement for a stale one.
        ELECTION: [
          { guard: "outdatedByHigher", target: "#bully.electing", actions: "learnTerm" },
          { guard: "outdated", actions: reclaim },
          { actions: "announce" },
        ],
        OK: [{ guard: "outdatedByHigher", target: "#bully.electing", actions: "learnTerm" }, { guard: "outdated", actions: reclaim }, { actions: "learnTerm" }],
        TERM: [{ guard: "outdatedByHigher", target: "#bully.electing", actions: "learnTerm" }, { guard: "outdated", actions: reclaim }, { actions: "learnTerm" }],
        ANNOUNCE: [
          { guard: "fromSelf" },
          // A higher server leads with a newer term: we step down. (An older
          // term from above is stale, or a restart that will hear us and
          // claim a newer one.)
          { guard: "newerFromHigher", target: "follower", actions: followIt },
          // A lower server claims to lead (a healed partition): take over with
          // a term above its own, so everyone who followed it switches.
          { guard: "fromLower", target: "leader", reenter: true, actions: ["learnTerm", "claimTerm"] },
          // A higher server with an older term (it restarted and forgot the
          // terms): answer at once rather than at the next interval, so it
          // hears a lower leader and claims above us now.
          { actions: "announce" },
        ],
      },
    },
    follower: {
      on: {
        COORDINATOR_DOWN: { guard: "isCoordinatorDown", target: "electing" },
        // A lower server electing means it lost the coordinator, or does not
        // know us: bully it.
        ELECTION: [{ guard: "fromLowerRank", target: "electing", actions: "learnTerm" }, { actions: "learnTerm" }],
        OK: { actions: "learnTerm" },
        ANNOUNCE: [
          { guard: "fromSelf" },
          // A newer coordinator ranked above us: follow it.
          { guard: "newerFromHigher", target: "follower", reenter: true, actions: followIt },
          // A newer coordinator ranked below us: we should lead, take over.
          { guard: "newer", target: "electing", actions: "learnTerm" },
          // Stale: ignore, but remember its epoch.
          { actions: "learnTerm" },
        ],
      },
    },
  },
})
