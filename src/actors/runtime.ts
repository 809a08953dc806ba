import { Cause, Clock, Data, Duration, Effect, Exit, Fiber, FiberSet, Schedule, type Scope } from "effect"
import { LamportClock } from "../machines/lamport.ts"
import type { Stamp } from "../protocol/messages.ts"
import type { XClock } from "./coordination.ts"
import { logSettingsFrom, withLogging } from "./logging.ts"

/**
 * XState's clock on Effect's Clock: every `after` delay of a hosted machine,
 * and every retry a node schedules, is a fiber sleeping on the role's Clock
 * in the role's scope. So whoever gives a role its Clock and scheduler (the
 * simulator: simulated time) drives the machines' delays too, and closing
 * the role's scope (a shutdown, or the simulator's crash) cancels every one
 * still pending. No role calls the global setTimeout.
 */
export const xstateClock: Effect.Effect<XClock, never, Scope.Scope> = Effect.map(FiberSet.makeRuntime<never>(), (run) => ({
  setTimeout: (fn: () => void, ms: number) =>
    run(
      Effect.andThen(
        Effect.sleep(Duration.millis(Math.max(0, ms))),
        Effect.sync(fn).pipe(Effect.catchDefect((e) => Effect.logError("a machine's timer callback threw", e))),
      ),
    ),
  clearTimeout: (fiber: Fiber.Fiber<unknown, unknown> | undefined) => fiber?.interruptUnsafe(),
}))

export interface RestartPolicy {
  /** First back-off after a failure; doubles each time. */
  readonly restartBackoffMs: number
  readonly restartBackoffMaxMs: number
  /** Give up (and fail the role, so its own supervisor restarts the process) after this many restarts in a row. */
  readonly restartsMax: number
}

export const defaultRestartPolicy: RestartPolicy = { restartBackoffMs: 100, restartBackoffMaxMs: 5_000, restartsMax: 20 }

/** A supervised loop's failure or defect, kept whole for the log. */
export class LoopFailed extends Data.TaggedError("LoopFailed")<{ readonly name: string; readonly cause: Cause.Cause<unknown> }> {}

/**
 * Runs a loop that should run forever; when it fails, or dies of a defect (a
 * thrown exception), it is logged and restarted with a bounded exponential
 * back-off. Interruption is not a failure and is never restarted. After
 * `restartsMax` restarts in a row the role fails, and the process exits for
 * its own supervisor (bulletin up, compose) to restart.
 */
export const supervised = <A, E, R>(name: string, loop: Effect.Effect<A, E, R>, policy: RestartPolicy = defaultRestartPolicy) =>
  loop.pipe(
    Effect.catchCause((cause) => (Cause.hasInterruptsOnly(cause) ? Effect.failCause(cause as Cause.Cause<never>) : Effect.fail(new LoopFailed({ name, cause })))),
    Effect.tapError((e) => Effect.logError(`${name} failed, restarting`, Cause.pretty(e.cause))),
    Effect.retry({
      times: policy.restartsMax,
      schedule: Schedule.exponential(Duration.millis(policy.restartBackoffMs)).pipe(
        Schedule.modifyDelay((m) => Effect.succeed(Duration.millis(Math.min(Duration.toMillis(m.duration), policy.restartBackoffMaxMs)))),
      ),
    }),
  )

/**
 * A host clock that is off by `skewMs` (fault injection: `bulletin server
 * --clock-skew`). Wall-clock readings move; monotonic time and sleeps do not,
 * as with a real machine whose clock was set wrong.
 */
export const skewedClock = (real: Clock.Clock, skewMs: number): Clock.Clock => {
  const skewNs = BigInt(Math.round(skewMs * 1_000_000))
  return {
    currentTimeMillisUnsafe: () => real.currentTimeMillisUnsafe() + skewMs,
    currentTimeMillis: Effect.sync(() => real.currentTimeMillisUnsafe() + skewMs),
    currentTimeNanosUnsafe: () => real.currentTimeNanosUnsafe() + skewNs,
    currentTimeNanos: Effect.sync(() => real.currentTimeNanosUnsafe() + skewNs),
    monotonicTimeNanosUnsafe: () => real.monotonicTimeNanosUnsafe(),
    monotonicTimeNanos: real.monotonicTimeNanos,
    sleep: (d) => real.sleep(d),
  }
}

/** Runs `effect` with the Clock service off by `skewMs` (nothing changes at 0). */
export const withClockSkew = <A, E, R>(skewMs: number, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  skewMs === 0
    ? effect
    : Effect.gen(function* () {
        const real = yield* Clock.Clock
        return yield* Effect.provideService(effect, Clock.Clock, skewedClock(real, skewMs))
      })

/**
 * Stamps outgoing messages: the process's Lamport clock and its physical
 * clock (Effect's Clock service, so tests control it), adjusted by the
 * server's coordination layer (Berkeley offsets, slewed).
 */
export class Stamper {
  readonly lamport: LamportClock
  /** Raw physical time to the time stamped: a server sets it to its Berkeley-adjusted, slewing clock. */
  adjust: (rawMs: number) => number = (rawMs) => rawMs
  constructor(initialClock = 0) {
    this.lamport = new LamportClock(initialClock)
  }
  /** Whole milliseconds (the slewed clock has fractions); floor keeps it monotonic. */
  readonly now: Effect.Effect<number> = Effect.map(Clock.currentTimeMillis, (t) => Math.floor(this.adjust(t)))
  /** Tick for a send and read the time. */
  readonly stamp: Effect.Effect<Stamp> = Effect.map(this.now, (timestampMs) => ({ clock: this.lamport.tick(), timestampMs }))
  readonly observe = (received: number | undefined) => this.lamport.observe(received)
}

/**
 * The process entry point: runs a role until it ends or the process gets
 * SIGINT/SIGTERM, then interrupts it (closing every scope, so sockets and the
 * store are released) and exits.
 */
export const runMain = <E>(program: Effect.Effect<unknown, E>) => {
  const logging = withLogging(logSettingsFrom(process.env, process.stdout.isTTY === true))
  const fiber = Effect.runFork(logging(program))
  let signals = 0
  const stop = (signal: string) => {
    signals += 1
    if (signals > 1) process.exit(130)
    Effect.runFork(logging(Effect.logInfo(`${signal}: shutting down`)))
    Effect.runFork(Fiber.interrupt(fiber))
  }
  process.on("SIGINT", () => stop("SIGINT"))
  process.on("SIGTERM", () => stop("SIGTERM"))
  fiber.addObserver((exit) => {
    if (Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause)) {
      console.error(Cause.pretty(exit.cause))
      process.exit(1)
    }
    // A program that ended on its own may have set the status (a script whose commands failed: 1).
    process.exit(typeof process.exitCode === "number" ? process.exitCode : 0)
  })
}
