import { Cause, Effect, Logger, References } from "effect"

/**
 * The log lines of a role process: `[HH:MM:SS.mmm] LEVEL message` (no fiber
 * ids), or one JSON object per line. Chosen by the environment, so that
 * every command and every process `bulletin up` starts agrees:
 *   BULLETIN_LOG_LEVEL   debug | info (default) | warn | error   (`--log-level`)
 *   BULLETIN_LOG_FORMAT  text (default) | json                     (`--log-format`)
 *   NO_COLOR             set: no colours (https://no-color.org); colours only on a terminal anyway
 * Berkeley rounds and clock adjustments are at debug: they are most of a
 * server's lines and say little one by one (the dashboard plots them).
 */
import { type LogSettings, levelNames } from "./logSettings.ts"

export { type LogLevelName, type LogSettings, logSettingsFrom } from "./logSettings.ts"

const text = (message: unknown, cause: Cause.Cause<unknown>): string => {
  const parts = Array.isArray(message) ? message : [message]
  let out = parts.map((p) => (typeof p === "string" ? p : p instanceof Error ? p.message : Cause.isCause(p) ? Cause.pretty(p) : typeof p === "object" ? JSON.stringify(p) : String(p))).join(" ")
  if (cause.reasons.length > 0) out += `\n${Cause.pretty(cause)}`
  return out
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0")
// Warnings yellow, errors red; info and debug plain (nothing that reads like an error).
const tint: Record<string, string> = { WARN: "\u001b[33m", ERROR: "\u001b[31m", FATAL: "\u001b[31m", DEBUG: "\u001b[2m" }

// As Effect's console logger: debug and info on stdout, warnings and errors on stderr.
export const roleLogger = (s: LogSettings) =>
  Logger.make((o) => {
    const level = o.logLevel.toUpperCase()
    const message = text(o.message, o.cause)
    const out = level === "DEBUG" || level === "INFO" || level === "TRACE" ? process.stdout : process.stderr
    if (s.format === "json") {
      out.write(`${JSON.stringify({ time: o.date.toISOString(), level: o.logLevel.toLowerCase(), message })}\n`)
      return
    }
    const d = o.date
    const stamp = `[${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}]`
    const head = s.color && tint[level] !== undefined ? `${tint[level]}${level}\u001b[0m` : level
    out.write(`${stamp} ${head} ${message}\n`)
  })

/** Runs `program` with the role logger and minimum level of `s`. */
export const withLogging = (s: LogSettings) => <A, E, R>(program: Effect.Effect<A, E, R>) =>
  program.pipe(Effect.provideService(Logger.CurrentLoggers, new Set([roleLogger(s)])), Effect.provideService(References.MinimumLogLevel, levelNames[s.level]))
