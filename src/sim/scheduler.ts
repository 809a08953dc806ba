/**
 * Discrete-event time for the simulator: a priority queue of callbacks
 * ordered by (time, insertion order), and a FIFO of immediate tasks that run
 * at the current time before the clock moves on (what Node's setImmediate is
 * to the real event loop: Effect's fiber scheduler dispatches into it, so
 * every role's fibers run on simulated time). Time only moves when the next
 * timer is taken, so a run of hours takes milliseconds, and ties are broken
 * the same way every time.
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
  #immediates: Array<() => void> = []
  #immediateHead = 0
  /** Events run so far, timers and immediates (a bound on runaway runs). */
  executed = 0
  #eventsMax = Number.POSITIVE_INFINITY

  get now(): number {
    return this.#now
  }

  get pending(): number {
    return this.#heap.length + this.#immediates.length - this.#immediateHead
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

  /** XState's clock interface, backed by this scheduler (for hosting a machine or node directly in a test). */
  xstateClock(): { setTimeout: (fn: () => void, ms: number) => Timer; clearTimeout: (t: Timer) => void } {
    return { setTimeout: (fn, ms) => this.after(ms, fn), clearTimeout: (t) => this.cancel(t) }
  }

  /** Runs `fn` at the current time, after every immediate queued before it; returns its cancel. */
  immediate(fn: () => void): () => void {
    let cancelled = false
    this.#immediates.push(() => {
      if (!cancelled) fn()
    })
    return () => {
      cancelled = true
    }
  }

  /** Runs every event due up to `time` (inclusive), then sets the time to `time`. */
  runUntil(time: number, eventsMax: number): void {
    this.#eventsMax = eventsMax
    for (;;) {
      this.#drainImmediates()
      if (this.#heap.length === 0 || this.#heap[0]!.at > time) break
      const t = this.#pop()
      if (t.cancelled) continue
      this.#now = t.at
      this.#count()
      t.fn()
    }
    this.#now = Math.max(this.#now, time)
  }

  #drainImmediates() {
    const q = this.#immediates
    while (this.#immediateHead < q.length) {
      const fn = q[this.#immediateHead]!
      q[this.#immediateHead++] = undefined as unknown as () => void
      this.#count()
      fn()
    }
    q.length = 0
    this.#immediateHead = 0
  }

  #count() {
    this.executed += 1
    if (this.executed > this.#eventsMax) throw new Error(`simulation ran more than ${this.#eventsMax} events: runaway loop?`)
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
