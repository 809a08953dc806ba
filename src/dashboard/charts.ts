import type { AnyStateMachine } from "xstate"
import { berkeleyMachine, bullyMachine, heartbeatMachine, replicationMachine } from "../machines/index.ts"

/**
 * The state charts the dashboard draws, read from the machine definitions
 * themselves (`machine.root.definition`), so the picture cannot drift from
 * the code: every state, and every transition that changes state, with its
 * event (delays as `after <name>`, eventless ones as `always`) and guard.
 *
 * State paths are the dotted form the monitoring channel reports
 * (`leader.announcing`), so a report's state names a box directly.
 * ./layout.ts lays the charts out (ELK) for the page.
 */
export interface ChartState {
  /** Dotted path from the root: `leader.announcing`. */
  readonly path: string
  readonly key: string
  readonly type: string
  /** Path of the enclosing state; "" for the machine's top-level states. */
  readonly parent: string
  readonly initial: boolean
}

export interface ChartTransition {
  readonly source: string
  readonly target: string
  readonly event: string
  readonly guard: string | undefined
}

export interface Chart {
  readonly machine: string
  readonly id: string
  readonly states: ReadonlyArray<ChartState>
  readonly transitions: ReadonlyArray<ChartTransition>
}

interface DefinitionNode {
  readonly id: string
  readonly key: string
  readonly type: string
  readonly initial?: { readonly target: ReadonlyArray<unknown> }
  readonly states: Readonly<Record<string, DefinitionNode>>
  readonly transitions: ReadonlyArray<DefinitionTransition>
}

interface DefinitionTransition {
  readonly eventType: string
  readonly target?: ReadonlyArray<unknown>
  readonly guard?: unknown
  readonly delay?: unknown
}

const idOf = (x: unknown): string => (typeof x === "string" ? x.replace(/^#/, "") : String((x as { id?: unknown }).id ?? ""))

const eventName = (t: DefinitionTransition): string => {
  if (t.eventType === "") return "always"
  const after = /^xstate\.after\.([^.]+)\./.exec(t.eventType)
  return after === null ? t.eventType : `after ${after[1]}`
}

const guardName = (g: unknown): string | undefined =>
  g === undefined ? undefined : typeof g === "string" ? g : typeof g === "object" && g !== null && "type" in g ? String((g as { type: unknown }).type) : "guard"

export const chartOf = (machine: string, m: AnyStateMachine): Chart => {
  const root = (m.root as unknown as { definition: DefinitionNode }).definition
  const rootId = root.id
  const pathOf = (id: string) => (id === rootId ? "" : id.slice(rootId.length + 1))
  const states: Array<ChartState> = []
  const transitions: Array<ChartTransition> = []
  const walk = (node: DefinitionNode, parent: DefinitionNode | undefined) => {
    const path = pathOf(node.id)
    if (parent !== undefined) {
      const initial = (parent.initial?.target ?? []).map(idOf).includes(node.id)
      states.push({ path, key: node.key, type: node.type, parent: pathOf(parent.id), initial })
    }
    // Eventless transitions are not in the definition; the state node has them.
    const always = (m.getStateNodeById(node.id) as unknown as { always?: ReadonlyArray<DefinitionTransition> }).always ?? []
    for (const t of [...node.transitions, ...always.map((a) => ({ ...a, eventType: "" }))]) {
      for (const target of t.target ?? []) transitions.push({ source: path, target: pathOf(idOf(target)), event: eventName(t), guard: guardName(t.guard) })
    }
    for (const child of Object.values(node.states)) walk(child, node)
  }
  walk(root, undefined)
  return { machine, id: rootId, states, transitions }
}

/** The machines a server runs, by the names its monitoring reports use. */
export const serverCharts = (): ReadonlyArray<Chart> => [
  chartOf("bully", bullyMachine),
  chartOf("berkeley", berkeleyMachine),
  chartOf("replication", replicationMachine),
  chartOf("referenceHeartbeat", heartbeatMachine),
  chartOf("coordinatorHeartbeat", heartbeatMachine),
]
