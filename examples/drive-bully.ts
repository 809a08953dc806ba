/**
 * Three Bully machines in a hand-written event loop, on virtual time.
 *
 *   npx tsx examples/drive-bully.ts
 *
 * The machines are pure: they never read a clock or touch a socket. The host
 * gives each actor a `clock` (xstate's Clock: setTimeout / clearTimeout) and
 * turns the intents they emit into messages. Here one VirtualClock serves the
 * machines' timers and the "network" (a delivery is a timer of `latencyMs`),
 * so the whole run is deterministic and takes no real time.
 */
import { resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { createActor, type Actor, type ActorOptions, type AnyActorLogic } from "xstate"
import { type BullyEvent, type Peer, bullyMachine } from "../src/machines/index.ts"

/** xstate's Clock interface (not exported by name from "xstate"). */
type Clock = NonNullable<ActorOptions<AnyActorLogic>["clock"]>

interface Timer {
  readonly id: number
  readonly at: number
  readonly fn: () => void
}

/** Virtual time over a binary min-heap of timers, ordered by (due time, creation). */
export class VirtualClock implements Clock {
  #now = 0
  #nextId = 1
  readonly #heap: Timer[] = []
  readonly #cancelled = new Set<number>()

  now(): number {
    return this.#now
  }

  setTimeout(fn: () => void, timeout: number): number {
    const id = this.#nextId++
    this.#push({ id, at: this.#now + Math.max(0, timeout), fn })
    return id
  }

  clearTimeout(id: number): void {
    this.#cancelled.add(id)
  }

  /** Fire every timer due up to `until` (inclusive), in order; then stand at `until`. */
  runUntil(until: number): void {
    for (;;) {
      const top = this.#heap[0]
      if (top === undefined || top.at > until) break
      this.#pop()
      if (this.#cancelled.delete(top.id)) continue
      this.#now = top.at
      top.fn()
    }
    this.#now = until
  }

  static #before(a: Timer, b: Timer): boolean {
    return a.at < b.at || (a.at === b.at && a.id < b.id)
  }

  #push(t: Timer): void {
    const h = this.#heap
    h.push(t)
    for (let i = h.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1
      if (!VirtualClock.#before(h[i]!, h[parent]!)) break
      ;[h[i], h[parent]] = [h[parent]!, h[i]!]
      i = parent
    }
  }

  #pop(): void {
    const h = this.#heap
    const last = h.pop()!
    if (h.length === 0) return
    h[0] = last
    for (let i = 0; ; ) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < h.length && VirtualClock.#before(h[l]!, h[m]!)) m = l
      if (r < h.length && VirtualClock.#before(h[r]!, h[m]!)) m = r
      if (m === i) break
      ;[h[i], h[m]] = [h[m]!, h[i]!]
      i = m
    }
  }
}

type Term = { readonly epoch: number; readonly rank: number }
const fmt = (t: Term) => `${t.epoch}.${t.rank}`

export function runExample(): string[] {
  const servers: ReadonlyArray<Peer> = [
    { name: "a", rank: 1 },
    { name: "b", rank: 2 },
    { name: "c", rank: 3 },
  ]
  const latencyMs = 5
  const clock = new VirtualClock()
  const lines: string[] = []
  const log = (who: string, text: string) => lines.push(`${String(clock.now()).padStart(5)} ms  ${who}  ${text}`)

  const actors = new Map<string, Actor<typeof bullyMachine>>()
  const alive = new Set<string>()

  /** The network: deliver after `latencyMs`, unless the recipient is down by then. */
  const deliver = (to: string, event: BullyEvent, onArrival?: () => void) => {
    clock.setTimeout(() => {
      if (!alive.has(to)) return log(to, `(down) drops ${event.type}`)
      onArrival?.()
      actors.get(to)!.send(event)
    }, latencyMs)
  }

  for (const self of servers) {
    const actor = createActor(bullyMachine, {
      input: { self, electionTimeoutMs: 100, coordinatorTimeoutMs: 300, announceIntervalMs: 1_000, startupTimeoutMs: 500 },
      clock,
    })
    actor.on("sendElection", ({ to, term }) => {
      log(self.name, `-> ${to}  ELECTION (term ${fmt(term)})`)
      // The recipient's host answers OK at once, then hands the election to its machine.
      deliver(to, { type: "ELECTION", from: self.name, rank: self.rank, term }, () => {
        const theirs = actors.get(to)!.getSnapshot().context.term
        log(to, `-> ${self.name}  OK (term ${fmt(theirs)})`)
        deliver(self.name, { type: "OK", from: to, term: theirs })
      })
    })
    actor.on("announce", ({ term }) => {
      log(self.name, `-> all  ANNOUNCE coordinator ${self.name} (term ${fmt(term)})`)
      for (const s of servers) deliver(s.name, { type: "ANNOUNCE", coordinator: self.name, rank: self.rank, term })
    })
    actor.on("coordinatorChanged", ({ coordinator, self: isSelf }) => {
      if (coordinator === undefined) log(self.name, "elects")
      else log(self.name, isSelf ? `leads (term ${fmt(coordinator.term)})` : `follows ${coordinator.name} (term ${fmt(coordinator.term)})`)
    })
    actors.set(self.name, actor)
    alive.add(self.name)
  }

  const coordinatorOf = (name: string) => actors.get(name)!.getSnapshot().context.coordinator
  const agreed = () => {
    const views = [...alive].map((n) => coordinatorOf(n)?.name)
    return views.every((v) => v !== undefined && v === views[0]) ? coordinatorOf([...alive][0]!) : undefined
  }

  lines.push("--- start: every server learns the peer list")
  for (const [name, actor] of actors) {
    actor.start()
    actor.send({ type: "PEERS", peers: servers.filter((s) => s.name !== name) })
  }
  clock.runUntil(500)
  const first = agreed()
  lines.push(first === undefined ? "no agreement" : `--- agreed at ${clock.now()} ms: coordinator is ${first.name} (rank ${first.rank})`)

  // Crash the coordinator: its actor stops (its timers are cleared), the network drops what is sent to it.
  const crashed = first?.name ?? "c"
  log(crashed, "CRASHES")
  actors.get(crashed)!.stop()
  alive.delete(crashed)
  // The failure detectors (heartbeat machines in the real host) notice, a after 300 ms, b a little later.
  const detect = (name: string, afterMs: number) =>
    clock.setTimeout(() => {
      log(name, `failure detector: ${crashed} is down`)
      actors.get(name)!.send({ type: "COORDINATOR_DOWN", name: crashed })
    }, afterMs)
  detect("a", 300)
  detect("b", 320)
  clock.runUntil(clock.now() + 1_500)

  const final = agreed()
  for (const actor of actors.values()) actor.stop()
  lines.push(final === undefined ? "final coordinator: none agreed" : `final coordinator: ${final.name} (rank ${final.rank}), term ${fmt(final.term)}`)
  return lines
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const line of runExample()) console.log(line)
}
