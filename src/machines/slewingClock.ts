/**
 * A physical clock that takes corrections without ever running backwards.
 *
 * `now(raw)` maps readings of the raw physical clock (the OS clock in the
 * actors, a skewed and drifting one in the simulator) to the adjusted time
 * that stamps every message. A correction from Berkeley is not applied at
 * once: it is slewed, the adjusted clock running at (1 ± slewRate) of the raw
 * one until the correction is used up. A correction larger than
 * `stepThresholdMs` forward is stepped at once (a jump forward never runs a
 * clock backwards). If the raw clock itself steps backwards, the step is
 * absorbed into the correction and the adjusted clock carries on. Pure: no clock is read
 * here; the caller passes every reading in.
 */
export interface SlewingClockOptions {
  /** Fraction of elapsed time by which a correction is applied (0 < r < 1). */
  readonly slewRate: number
  /** Forward corrections beyond this are stepped immediately. */
  readonly stepThresholdMs: number
}

export const defaultSlewing: SlewingClockOptions = { slewRate: 0.5, stepThresholdMs: 5_000 }

export class SlewingClock {
  readonly #options: SlewingClockOptions
  /** Correction already applied. */
  #applied = 0
  /** Correction still to apply (signed). */
  #pending = 0
  #lastRaw: number | undefined
  #lastOut = Number.NEGATIVE_INFINITY

  constructor(options: SlewingClockOptions = defaultSlewing) {
    if (!(options.slewRate > 0 && options.slewRate < 1)) throw new RangeError(`slewRate must be in (0, 1), got ${options.slewRate}`)
    this.#options = options
  }

  /** The adjusted time at raw reading `raw`. Never less than any earlier answer. */
  now(raw: number): number {
    if (this.#lastRaw !== undefined && raw > this.#lastRaw && this.#pending !== 0) {
      const budget = (raw - this.#lastRaw) * this.#options.slewRate
      const step = Math.sign(this.#pending) * Math.min(Math.abs(this.#pending), budget)
      this.#applied += step
      this.#pending -= step
    }
    // The raw clock stepped backwards (an operator, a VM resume): absorb the
    // step into the correction, so the adjusted clock carries on from where
    // it was instead of jumping back or freezing; Berkeley slews the rest.
    if (this.#lastRaw !== undefined && raw < this.#lastRaw) this.#applied += this.#lastRaw - raw
    this.#lastRaw = raw
    const out = Math.max(this.#lastOut, raw + this.#applied)
    this.#lastOut = out
    return out
  }

  /** Take a correction (signed ms) at raw reading `raw`; it replaces any correction still pending. */
  adjust(offsetMs: number, raw: number): void {
    this.now(raw)
    if (offsetMs > this.#options.stepThresholdMs) {
      this.#applied += offsetMs
      this.#pending = 0
    } else {
      this.#pending = offsetMs
    }
  }

  /** Total correction applied so far plus what is still pending. */
  get offsetMs(): number {
    return this.#applied + this.#pending
  }

  get pendingMs(): number {
    return this.#pending
  }
}
