/**
 * The reference service's state: ranks and liveness. Pure (every call takes
 * the time), shared by the reference actor and the simulator.
 *
 * - `rank(name)` gives the next rank (1, 2, ...) on first registration and the
 *   same rank forever after, even if the server was dropped as dead meanwhile.
 * - `heartbeat(name)` refreshes a registered server (false for an unknown one,
 *   which must ask for its rank again).
 * - `list()` gives the live servers: registered, last heard within `deadAfterMs`.
 */
export interface RegistryEntry {
  readonly name: string
  readonly rank: number
  readonly addr: string | undefined
  readonly lastSeenMs: number
}

export interface RegistrySnapshot {
  readonly ranks: ReadonlyArray<{ readonly name: string; readonly rank: number }>
}

export class Registry {
  readonly #ranks = new Map<string, number>()
  readonly #live = new Map<string, RegistryEntry>()
  readonly deadAfterMs: number
  /** Servers ever registered; past it, new names are refused. */
  readonly serversMax: number

  constructor(options: { deadAfterMs: number; serversMax: number }, snapshot?: RegistrySnapshot) {
    this.deadAfterMs = options.deadAfterMs
    this.serversMax = options.serversMax
    for (const { name, rank } of snapshot?.ranks ?? []) this.#ranks.set(name, rank)
  }

  rank(name: string, addr: string | undefined, nowMs: number): number | undefined {
    let rank = this.#ranks.get(name)
    if (rank === undefined) {
      if (this.#ranks.size >= this.serversMax) return undefined
      rank = this.#ranks.size + 1
      this.#ranks.set(name, rank)
    }
    this.#live.set(name, { name, rank, addr: addr ?? this.#live.get(name)?.addr, lastSeenMs: nowMs })
    return rank
  }

  /** Whether `name` has ever been given a rank. */
  hasRank(name: string): boolean {
    return this.#ranks.has(name)
  }

  heartbeat(name: string, nowMs: number): boolean {
    const e = this.#live.get(name)
    if (e === undefined) return false
    this.#live.set(name, { ...e, lastSeenMs: nowMs })
    return true
  }

  /** Drops servers not heard from in `deadAfterMs`; returns their names. */
  prune(nowMs: number): ReadonlyArray<string> {
    const dead: Array<string> = []
    for (const [name, e] of this.#live) {
      if (nowMs - e.lastSeenMs > this.deadAfterMs) {
        this.#live.delete(name)
        dead.push(name)
      }
    }
    return dead
  }

  list(nowMs: number): ReadonlyArray<RegistryEntry> {
    this.prune(nowMs)
    return [...this.#live.values()].sort((a, b) => a.rank - b.rank)
  }

  snapshot(): RegistrySnapshot {
    return { ranks: [...this.#ranks].map(([name, rank]) => ({ name, rank })) }
  }
}
