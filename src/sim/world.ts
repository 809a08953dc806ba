import { Cause, Clock, Duration, Effect, Exit, type Fiber, Logger, Random, Scheduler as EffectScheduler } from "effect"
import { Scheduler } from "./scheduler.ts"

/**
 * Where the simulated roles live: one discrete-event scheduler for every
 * timer, Effect's fiber scheduler dispatching into its immediate queue, and
 * for each role process a Clock of its own (skew, drift, steps), a seeded
 * Random and a logger that writes to the run's timeline. A role is the real
 * Effect program, forked here; a crash interrupts its fiber.
 */
export interface HostClock {
  /** Raw clock minus true time at the start. */
  readonly skewMs: number
  /** Raw clock rate error, parts per million. */
  readonly driftPpm: number
  /** Steps applied so far (a clock set by hand, an NTP jump). */
  stepMs: number
}

/** Simulated epoch: times look like 2026 dates in the timeline and on the wire. */
export const epochMs = 1_790_000_000_000

export type LogLevelName = "Trace" | "Debug" | "Info" | "Warn" | "Error" | "Fatal" | "None" | "All"

export class World {
  readonly sched = new Scheduler()
  /** Effect's scheduler, over the simulator's immediate queue: no fiber ever waits on the real event loop. */
  readonly scheduler = new EffectScheduler.MixedScheduler("async", (f) => this.sched.immediate(f))

  get now(): number {
    return this.sched.now
  }

  /** A host's raw physical clock reading (ms since the epoch). */
  rawNow(c: HostClock): number {
    const t = this.sched.now
    return epochMs + t + (t * c.driftPpm) / 1e6 + c.skewMs + c.stepMs
  }

  /** Effect's Clock for a host: wall time from its raw clock, monotonic time and sleeps on true simulated time. */
  clock(c: HostClock): Clock.Clock {
    const sched = this.sched
    const raw = () => this.rawNow(c)
    const mono = () => BigInt(Math.round(sched.now * 1_000_000))
    return {
      currentTimeMillisUnsafe: raw,
      currentTimeMillis: Effect.sync(raw),
      currentTimeNanosUnsafe: () => BigInt(Math.round(raw() * 1_000_000)),
      currentTimeNanos: Effect.sync(() => BigInt(Math.round(raw() * 1_000_000))),
      monotonicTimeNanosUnsafe: mono,
      monotonicTimeNanos: Effect.sync(mono),
      sleep: (d) => {
        const ms = Duration.toMillis(d)
        if (!Number.isFinite(ms)) return Effect.never
        return Effect.callback<void>((resume) => {
          const t = sched.after(ms, () => resume(Effect.void))
          return Effect.sync(() => sched.cancel(t))
        })
      },
    }
  }

  /**
   * Forks a role process: its program with this host's Clock, a seeded
   * Random, the simulator's scheduler and a logger of its own. `exited` is
   * told how it ended, unless it was interrupted (a crash, the end of the run).
   */
  spawn<A, E>(
    program: Effect.Effect<A, E>,
    options: {
      readonly clock: Clock.Clock
      readonly seed: number
      readonly log: (level: LogLevelName, text: string) => void
      readonly exited?: (exit: Exit.Exit<A, E>) => void
    },
  ): Fiber.Fiber<A, E> {
    const logger = Logger.make((o) => {
      const parts = Array.isArray(o.message) ? o.message : [o.message]
      let text = parts.map((p) => (typeof p === "string" ? p : p instanceof Error ? p.message : Cause.isCause(p) ? Cause.pretty(p) : String(p))).join(" ")
      if (o.cause.reasons.length > 0) text += ` ${Cause.pretty(o.cause).split("\n")[0]}`
      options.log(o.logLevel as LogLevelName, text)
    })
    const fiber = Effect.runFork(
      program.pipe(
        Effect.provideService(Clock.Clock, options.clock),
        Random.withSeed(options.seed),
        Effect.provideService(Logger.CurrentLoggers, new Set([logger])),
      ),
      { scheduler: this.scheduler },
    )
    fiber.addObserver((exit) => {
      if (Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)) return
      options.exited?.(exit)
    })
    return fiber
  }
}
