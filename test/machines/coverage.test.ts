import {
  createActor,
  SimulatedClock,
  type AnyMachineSnapshot,
  type AnyStateMachine,
  type AnyTransitionDefinition,
  type EventObject,
  type StateValue,
} from "xstate"
import { adjacencyMapToArray, getAdjacencyMap, getShortestPaths, getStateNodes, toDirectedGraph, type DirectedGraphNode } from "xstate/graph"
import { describe, expect, it } from "vitest"
import { berkeleyMachine, type BerkeleyEvent } from "../../src/machines/berkeley.ts"
import { bullyMachine, type BullyEvent, type Peer } from "../../src/machines/bully.ts"
import { heartbeatMachine, type HeartbeatEvent } from "../../src/machines/heartbeat.ts"
import { replicationMachine, type ReplicationEvent } from "../../src/machines/replication.ts"

/*
 * Model-based coverage with xstate/graph. For each machine a traversal from
 * the initial snapshot (getAdjacencyMap / getShortestPaths) with an explicit
 * event set must reach every leaf state of the definition, and replaying every
 * edge of the adjacency map on an inspected actor must take every transition
 * of the definition: each guarded candidate of each event of each state node,
 * the delayed (`after`) ones and the eventless (`always`) ones.
 *
 * Notes on the xstate/graph API (5.33):
 * - Passing `events` replaces the default event set entirely: the delayed
 *   events (`xstate.after.<delay>.<stateId>`) are then no longer generated, so
 *   they are listed here explicitly, derived from the definition.
 * - toDirectedGraph does not list eventless (`always`) transitions; they are
 *   read from each state node's `always`.
 * - createTestModel refuses machines with `after` transitions, hence the
 *   hand-rolled replay.
 * - A leaf left at once by an `always` transition is never a snapshot of the
 *   traversal; the replay's microsteps show it.
 * - Context is part of a state's identity, and the Bully epoch and the
 *   Berkeley round grow without bound: those traversals serialize an
 *   abstraction of the context (relations between terms, who answered) and
 *   send events whose payloads are relative to the current context. So does
 *   the replication traversal (its round-robin `turn` grows without bound).
 */

type Snapshot = AnyMachineSnapshot

/** "a.b" paths of the leaves of a state value. */
const leafPaths = (v: StateValue): string[] =>
  typeof v === "string" ? [v] : Object.entries(v).flatMap(([k, sub]) => (sub === undefined || (typeof sub === "object" && Object.keys(sub).length === 0) ? [k] : leafPaths(sub).map((p) => `${k}.${p}`)))

const definitionLeaves = (m: AnyStateMachine) =>
  getStateNodes(m)
    .filter((n) => n.type === "atomic" || n.type === "final")
    .map((n) => n.path.join("."))
    .sort()

/** Every delayed event the definition can raise. */
const delayedEvents = (m: AnyStateMachine) => getStateNodes(m).flatMap((n) => n.after.map((t) => ({ type: t.eventType })))

const guardName = (t: AnyTransitionDefinition) => {
  const g = t.guard as unknown
  if (g === undefined) return ""
  if (typeof g === "string") return ` [${g}]`
  if (typeof g === "object" && g !== null && "type" in g) return ` [${String((g as { type: unknown }).type)}]`
  return " [inline guard]"
}

/** Every transition of the definition (each candidate of each event, delayed and eventless ones included), labelled. */
const definitionTransitions = (m: AnyStateMachine) => {
  const labels = new Map<AnyTransitionDefinition, string>()
  const label = (t: AnyTransitionDefinition, index: number) => {
    const targets = t.target === undefined || t.target.length === 0 ? "(no target)" : t.target.map((n) => n.id).join(",")
    return `${t.source.id}: ${t.eventType === "" ? "(always)" : t.eventType} #${index}${guardName(t)} -> ${targets}${t.reenter ? " (reenter)" : ""}`
  }
  const walk = (node: DirectedGraphNode) => {
    for (const e of node.edges) {
      const candidates = node.stateNode.transitions.get(e.transition.eventType) ?? []
      labels.set(e.transition, label(e.transition, candidates.indexOf(e.transition)))
    }
    node.children.forEach(walk)
  }
  walk(toDirectedGraph(m))
  for (const n of [m.root, ...getStateNodes(m)]) (n.always ?? []).forEach((t, i) => labels.set(t, label(t, i)))
  return labels
}

interface Options<E extends EventObject> {
  readonly input: unknown
  readonly events: (s: Snapshot) => ReadonlyArray<E>
  readonly serializeState?: (s: Snapshot) => string
}

/** Traverse, then replay every edge on an inspected actor to see which transitions fire. */
const explore = <E extends EventObject>(machine: AnyStateMachine, options: Options<E>) => {
  const delayed = delayedEvents(machine)
  const traversal = {
    input: options.input,
    events: (s: Snapshot) => [...options.events(s), ...delayed] as E[],
    // Only events some transition of the state takes (guards evaluated). Not
    // snapshot.can(): it says false for a taken transition with neither target
    // nor actions (the bully's "ignore our own announcement").
    filterEvents: (s: Snapshot, e: E) => machine.getTransitionData(s, e).length > 0,
    ...(options.serializeState === undefined ? {} : { serializeState: (s: Snapshot) => options.serializeState!(s) }),
  }
  const paths = getShortestPaths(machine, traversal as never)
  const edges = adjacencyMapToArray(getAdjacencyMap(machine, traversal as never)) as Array<{ state: Snapshot; event: E; nextState: Snapshot }>

  const taken = new Set<AnyTransitionDefinition>()
  // Leaves left at once by an eventless transition (the replication machine's
  // catchingUp.next, live.done) are never a stable snapshot: they count as
  // reached when a microstep of the replay passes through them.
  const passedThrough = new Set<string>()
  let mismatches = 0
  for (const { state, event, nextState } of edges) {
    let recording = false
    const actor = createActor(machine, {
      snapshot: machine.getPersistedSnapshot(state),
      clock: new SimulatedClock(),
      inspect: (ev) => {
        if (recording && ev.type === "@xstate.microstep") {
          for (const t of ev._transitions) taken.add(t)
          for (const leaf of leafPaths((ev.snapshot as Snapshot).value)) passedThrough.add(leaf)
        }
      },
    })
    actor.start()
    recording = true
    actor.send(event)
    // The actor and the pure traversal agree on where the event leads.
    if (JSON.stringify(actor.getSnapshot().value) !== JSON.stringify(nextState.value)) mismatches++
    actor.stop()
  }

  const labels = definitionTransitions(machine)
  return {
    reached: [...new Set([...paths.flatMap((p) => leafPaths(p.state.value)), ...passedThrough])].sort(),
    leaves: definitionLeaves(machine),
    missing: [...labels].filter(([t]) => !taken.has(t)).map(([, l]) => l),
    unexpected: [...taken].filter((t) => !labels.has(t)).length,
    transitions: labels.size,
    states: paths.length,
    edges: edges.length,
    mismatches,
  }
}

const expectFullCoverage = (r: ReturnType<typeof explore>) => {
  console.log(`coverage: ${r.reached.length}/${r.leaves.length} leaf states, ${r.transitions - r.missing.length}/${r.transitions} transitions, ${r.states} abstract states, ${r.edges} edges`)
  expect(r.leaves.length).toBeGreaterThan(0)
  expect(r.reached).toEqual(r.leaves)
  expect(r.missing).toEqual([])
  expect(r.unexpected).toBe(0)
  expect(r.mismatches).toBe(0)
}

describe("model-based coverage (xstate/graph)", () => {
  it("heartbeat: every leaf state reached, every transition taken", () => {
    const r = explore<HeartbeatEvent>(heartbeatMachine, {
      input: { intervalMs: 100, livenessMax: 3 },
      events: () => [{ type: "PONG" }],
    })
    expectFullCoverage(r)
    expect(r.leaves).toEqual(["down.probing", "up"])
    // up: PONG, interval x3 (answered | lastChance | spend); down: PONG; down.probing: interval.
    expect(r.transitions).toBe(6)
  })

  it("bully (b among a < b < c): every leaf state reached, every transition taken", () => {
    const A: Peer = { name: "a", rank: 1 }
    const B: Peer = { name: "b", rank: 2 }
    const C: Peer = { name: "c", rank: 3 }
    type Term = { readonly epoch: number; readonly rank: number }
    const later = (x: Term, y: Term) => x.epoch > y.epoch || (x.epoch === y.epoch && x.rank > y.rank)
    const r = explore<BullyEvent>(bullyMachine, {
      input: { self: B, electionTimeoutMs: 100, coordinatorTimeoutMs: 300, announceIntervalMs: 1_000, startupTimeoutMs: 500 },
      // Payloads relative to the current terms, so that "newer" and "stale"
      // keep their meaning however far the epochs have gone.
      events: (s) => {
        const term: Term = s.context.term
        const ref: Term = s.context.coordinator?.term ?? term
        const newer = (p: Peer): Term => ({ epoch: term.epoch + 1, rank: p.rank })
        const stale = (p: Peer): Term => ({ epoch: Math.max(0, ref.epoch - 1), rank: p.rank })
        const announce = (p: Peer, t: Term): BullyEvent => ({ type: "ANNOUNCE", coordinator: p.name, rank: p.rank, term: t })
        return [
          { type: "PEERS", peers: [A, C] },
          { type: "PEERS", peers: [A] }, // nobody higher: electing leads at once
          { type: "ELECTION", from: "a", rank: 1, term: newer(A) },
          { type: "ELECTION", from: "a", rank: 1, term: stale(A) },
          { type: "ELECTION", from: "a", rank: 1, term: newer(C) }, // a heard c's newer term
          { type: "ELECTION", from: "c", rank: 3 }, // from above: no bullying
          { type: "OK", from: "c" },
          { type: "OK", from: "c", term: newer(C) },
          { type: "OK", from: "c", term: newer(A) },
          announce(B, ref), // our own, heard back
          announce(C, newer(C)),
          announce(C, stale(C)),
          announce(A, newer(A)),
          announce(A, stale(A)),
          { type: "COORDINATOR_DOWN", name: s.context.coordinator?.name ?? "c" },
          { type: "COORDINATOR_DOWN", name: "nobody" },
          { type: "TERM", term: newer(C) },
          { type: "TERM", term: newer(A) },
          { type: "TERM", term: newer(B) }, // our own term from before a restart
          { type: "TERM", term: stale(A) },
        ]
      },
      // The epoch is abstracted away: the state, the peers, and how the terms relate.
      serializeState: (s) => {
        const { term, coordinator, peers, self } = s.context as { term: Term; coordinator?: { name: string; term: Term }; peers: Peer[]; self: Peer }
        return JSON.stringify({
          value: s.value,
          peers: peers.map((p) => p.name),
          coordinator: coordinator?.name,
          coordinatorTerm: coordinator === undefined ? undefined : later(term, coordinator.term) ? "older than ours" : "ours",
          ownTerm: term.rank === self.rank,
        })
      },
    })
    expectFullCoverage(r)
    expect(r.leaves).toEqual(["electing", "follower", "leader.announcing", "starting", "waiting"])
  })

  it("berkeley (coordinator a, peers b and c): every leaf state reached, every transition taken", () => {
    const r = explore<BerkeleyEvent>(berkeleyMachine, {
      input: { self: "a", roundIntervalMs: 1_000, pollTimeoutMs: 200, roundSpacingMs: 100, toleranceMs: 100, rttMaxMs: 50 },
      events: (s) => {
        const round: number = s.context.round
        return [
          { type: "LEAD" },
          { type: "FOLLOW" },
          { type: "SYNC_NOW" },
          { type: "PEERS", peers: ["a", "b", "c"] },
          { type: "PEERS", peers: [] }, // nobody to wait for: a round completes at once
          { type: "SAMPLE", round, peer: "b", offsetMs: 20, rttMs: 10 },
          { type: "SAMPLE", round, peer: "c", offsetMs: -400, rttMs: 10 },
          { type: "SAMPLE", round: round - 1, peer: "b", offsetMs: 20, rttMs: 10 }, // an old round
          { type: "SAMPLE", round, peer: "z", offsetMs: 20, rttMs: 10 }, // an unknown peer
        ]
      },
      // The round number is abstracted away: the state, the peers, who answered.
      serializeState: (s) =>
        JSON.stringify({
          value: s.value,
          peers: s.context.peers,
          answered: (s.context.samples as Array<{ peer: string }>).map((x) => x.peer).sort(),
        }),
    })
    expectFullCoverage(r)
    expect(r.leaves).toEqual(["active.idle", "active.polling", "active.resting", "inactive"])
  })

  it("replication (s among a and b): every leaf state reached, every transition taken", () => {
    const r = explore<ReplicationEvent>(replicationMachine, {
      input: { self: "s", syncIntervalMs: 1_000, syncTimeoutMs: 300, catchUpTimeoutMs: 5_000, startupTimeoutMs: 500 },
      // Replies relative to the pull in flight, so that "from the target" keeps its meaning.
      events: (s) => {
        const target: string = s.context.target ?? "a"
        return [
          { type: "PEERS", peers: [] },
          { type: "PEERS", peers: ["a"] },
          { type: "PEERS", peers: ["s", "a", "b"] },
          { type: "GAP", origin: "b" },
          { type: "GAP", origin: "gone" }, // not a peer: the next in turn
          { type: "PULLED", peer: target, more: true },
          { type: "PULLED", peer: target, more: false },
          { type: "PULLED", peer: "other", more: false }, // not the target
          { type: "PULL_FAILED", peer: target },
          { type: "PULL_FAILED", peer: "other" },
          { type: "REJOINED" },
          { type: "CATCH_UP_STALLED" }, // what the stall timer raises
        ]
      },
      // The round-robin counter is abstracted to the position it selects.
      serializeState: (s) => {
        const { peers, pending, target, again, turn } = s.context as { peers: string[]; pending: string[]; target?: string; again?: string; turn: number }
        return JSON.stringify({ value: s.value, peers, pending, target, again, turn: turn % Math.max(1, peers.length) })
      },
    })
    expectFullCoverage(r)
    expect(r.leaves).toEqual(["catchingUp.next", "catchingUp.pulling", "live.done", "live.idle", "live.pulling", "starting"])
    // starting 2, catchingUp 2, .next 2 (always), .pulling 4, live 3, .idle 4, .pulling 5, .done 2 (always).
    expect(r.transitions).toBe(24)
  })
})
