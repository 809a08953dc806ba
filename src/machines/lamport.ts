/**
 * Lamport's logical clock, as PROTOCOL.md states the rule for every process:
 * increment before each send and put the value in the message; on receive,
 * take max(local, received). Pure, no I/O: the same object runs in the actors
 * and in the simulator.
 */
export class LamportClock {
  #value: number

  constructor(initial = 0) {
    if (!Number.isSafeInteger(initial) || initial < 0) throw new RangeError(`Lamport clock must start at a non-negative integer, got ${initial}`)
    this.#value = initial
  }

  /**
   * Called with the new value before the clock moves to it (a host persists
   * a lease with it, so a restarted process never reuses a value it sent).
   * If it throws (the lease could not be written), the clock stays where it
   * was and the error reaches the caller: no value past a lease that is not
   * on disk is ever handed out.
   */
  onAdvance: ((value: number) => void) | undefined

  get current(): number {
    return this.#value
  }

  /** A local event or a send: the value to stamp on it. */
  tick(): number {
    const next = this.#value + 1
    this.onAdvance?.(next)
    this.#value = next
    return next
  }

  /**
   * A receive from a sender that may not be trusted: adopted only if at most
   * `aheadMax` ahead of this clock. False (nothing adopted) if it is further.
   */
  admit(received: number | undefined, aheadMax: number): boolean {
    if (received !== undefined && Number.isSafeInteger(received) && received - this.#value > aheadMax) return false
    this.observe(received)
    return true
  }

  /** A receive. Returns the new local value. Missing or hostile values are ignored. */
  observe(received: number | undefined): number {
    if (received !== undefined && Number.isSafeInteger(received) && received > this.#value) {
      this.onAdvance?.(received)
      this.#value = received
    }
    return this.#value
  }
}
