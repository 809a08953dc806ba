/**
 * How a process logs, from its environment (see logging.ts). Apart from the
 * logger so that the command line can check the values without loading
 * effect.
 */
export type LogLevelName = "debug" | "info" | "warn" | "error"
/** Our level names, and Effect's for each. */
export const levelNames: Record<LogLevelName, "Debug" | "Info" | "Warn" | "Error"> = { debug: "Debug", info: "Info", warn: "Warn", error: "Error" }
export const logFormats = ["text", "json"] as const

export interface LogSettings {
  readonly level: LogLevelName
  readonly format: (typeof logFormats)[number]
  readonly color: boolean
}

export const isLogLevel = (s: string): s is LogLevelName => s.toLowerCase() in levelNames
export const isLogFormat = (s: string): s is LogSettings["format"] => (logFormats as ReadonlyArray<string>).includes(s.toLowerCase())

export const logSettingsFrom = (env: NodeJS.ProcessEnv, tty: boolean): LogSettings => {
  const level = (env.BULLETIN_LOG_LEVEL ?? "info").toLowerCase()
  if (!isLogLevel(level)) throw new Error(`BULLETIN_LOG_LEVEL must be one of ${Object.keys(levelNames).join(", ")}, got '${env.BULLETIN_LOG_LEVEL}'`)
  const format = (env.BULLETIN_LOG_FORMAT ?? "text").toLowerCase()
  if (!isLogFormat(format)) throw new Error(`BULLETIN_LOG_FORMAT must be text or json, got '${env.BULLETIN_LOG_FORMAT}'`)
  return { level, format, color: tty && (env.NO_COLOR === undefined || env.NO_COLOR === "") && env.TERM !== "dumb" }
}
