/**
 * Discrete-event time for the simulator: a priority queue of callbacks
 * ordered by (time, insertion order). Time only moves when the next event is
 * taken, so a run of hours takes milliseconds, and ties are broken the same
 * way every time.
 */
export interface Timer {
  readonly at: number
  readonly seq: number
  readonly fn: () => void
  cancelled: boolean
}

export class Scheduler {
  #now = 0
  #seq = 0
  #heap: Array<Timer> = []
  /** Events run so far (a bound on runaway runs). */
  executed = 0

  get now(): number {
    return this.#now
  }

  get pending(): number {
    return this.#heap.length
  }

  at(time: number, fn: () => void): Timer {
    const t: Timer = { at: Math.max(time, this.#now), seq: this.#seq++, fn, cancelled: false }
    this.#push(t)
    return t
  }

  after(ms: number, fn: () => void): Timer {
    return this.at(this.#now + Math.max(0, ms), fn)
  }

  cancel(t: Timer | undefined): void {
    if (t !== undefined) t.cancelled = true
  }

  /** XState's clock interface, backed by this scheduler. */
  xstateClock(): { setTimeout: (fn: () => void, ms: number) => Timer; clearTimeout: (t: Timer) => void } {
    return { setTimeout: (fn, ms) => this.after(ms, fn), clearTimeout: (t) => this.cancel(t) }
  }

  /** Runs every event due up to `time` (inclusive), then sets the time to `time`. */
  runUntil(time: number, eventsMax: number): void {
    while (this.#heap.length > 0 && this.#heap[0]!.at <= time) {
      const t = this.#pop()
      if (t.cancelled) continue
      this.#now = t.at
      this.executed += 1
      if (this.executed > eventsMax) throw new Error(`simulation ran more than ${eventsMax} events: runaway loop?`)
      t.fn()
    }
    this.#now = Math.max(this.#now, time)
  }

  #less(a: Timer, b: Timer) {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq)
  }

  #push(t: Timer) {
    const h = this.#heap
    h.push(t)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.#less(h[i]!, h[p]!)) break
      ;[h[i], h[p]] = [h[p]!, h[i]!]
      i = p
    }
  }

  #pop(): Timer {
    const h = this.#heap
    const top = h[0]!
    const last = h.pop()!
    if (h.length > 0) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && this.#less(h[l]!, h[m]!)) m = l
        if (r < h.length && this.#less(h[r]!, h[m]!)) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m]!, h[i]!]
        i = m
      }
    }
    return top
  }
}
