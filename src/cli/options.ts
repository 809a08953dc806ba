import { readFileSync } from "node:fs"
import { homedir, tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"

/**
 * A command's options. Every command reads each setting from, in order: its
 * flag (`--bot-rate 5`), its environment variable under one prefix
 * (`BULLETIN_BOT_RATE`, derived from the flag's name), the older name the
 * standard and compose use where there is one (`env`: `BOT_RATE`), the config
 * file (see `loadConfig`), then the default.
 */
export interface Option {
  /** The older environment variable (compose's and the standard's name), read after the BULLETIN_ one; or, if it starts with BULLETIN_, the name to use instead of the derived one. */
  readonly env?: string
  readonly default?: string
  readonly boolean?: boolean
  readonly help: string
  /** Older flag names still accepted (`up --data` for `--data-root`). */
  readonly aliases?: ReadonlyArray<string>
  /** For shell completion: the values it takes, or that it names a file or a folder. */
  readonly values?: ReadonlyArray<string>
  readonly path?: "file" | "directory"
}
export type Spec = Record<string, Option>

/** The environment variables of a flag: the BULLETIN_ one first, then its older name if it has one. */
export const envNames = (flag: string, option: Option): ReadonlyArray<string> => {
  if (option.env?.startsWith("BULLETIN_") === true) return [option.env]
  const derived = `BULLETIN_${flag.toUpperCase().replace(/-/g, "_")}`
  return option.env === undefined ? [derived] : [derived, option.env]
}

/**
 * The optional config file: `--config FILE` or BULLETIN_CONFIG (empty: none),
 * else $XDG_CONFIG_HOME/bulletin/config (~/.config/bulletin/config) when it
 * exists. Lines of `flag = value`; `#` starts a comment; settings before any
 * section apply to every command that has that flag, those under
 * `[COMMAND]` to that command only (and win). Flags and environment
 * variables win over the file.
 *
 *     # ~/.config/bulletin/config
 *     broker = 10.0.0.5
 *     log-level = warn
 *     [client]
 *     user = ana
 */
export interface Config {
  readonly file: string
  readonly global: ReadonlyMap<string, string>
  readonly sections: ReadonlyMap<string, ReadonlyMap<string, { readonly value: string; readonly line: number }>>
}

export const parseConfig = (file: string, text: string, commands: ReadonlyArray<string>): Config => {
  const global = new Map<string, string>()
  const sections = new Map<string, Map<string, { value: string; line: number }>>()
  let section: Map<string, { value: string; line: number }> | undefined
  const lines = text.split(/\r?\n/)
  if (lines.length > configLinesMax) throw new UsageError(`${file}: more than ${configLinesMax} lines; is it a bulletin config?`)
  lines.forEach((raw, i) => {
    const at = `${file}:${i + 1}`
    const line = raw.replace(/^\s+|\s+$/g, "")
    if (line === "" || line.startsWith("#") || line.startsWith(";")) return
    const header = /^\[([a-z-]+)\]\s*(?:[#;].*)?$/.exec(line)
    if (header !== null) {
      const name = header[1]!
      if (!commands.includes(name)) {
        const meant = didYouMean(name, commands)
        throw new UsageError(`${at}: no command '${name}'${meant === undefined ? "" : `; did you mean [${meant}]?`}`)
      }
      section = sections.get(name) ?? new Map()
      sections.set(name, section)
      return
    }
    const setting = /^([a-z][a-z0-9-]*)\s*=\s*(.*)$/.exec(line)
    if (setting === null) throw new UsageError(`${at}: expected 'flag = value' or '[command]', got '${line.slice(0, 60)}'`)
    let value = setting[2]!
    const quoted = /^"(.*)"$/.exec(value)
    if (quoted !== null) value = quoted[1]!
    else value = value.replace(/\s+#.*$/, "")
    if (section === undefined) global.set(setting[1]!, value)
    else section.set(setting[1]!, { value, line: i + 1 })
  })
  return { file, global, sections }
}

/** A config file longer than this is not one. */
const configLinesMax = 10_000

let config: Config | undefined
let command: string | undefined

/** Where the config file is, if there is one: `--config`/BULLETIN_CONFIG, else the XDG one when it exists. */
export const configPath = (env: NodeJS.ProcessEnv = process.env): { readonly path: string; readonly explicit: boolean } | undefined => {
  const given = env.BULLETIN_CONFIG
  if (given !== undefined) return given === "" ? undefined : { path: given, explicit: true }
  const base = env.XDG_CONFIG_HOME !== undefined && env.XDG_CONFIG_HOME !== "" ? env.XDG_CONFIG_HOME : join(homedir(), ".config")
  return { path: join(base, "bulletin", "config"), explicit: false }
}

/** Reads the config file for `name` (the command being run): called once by main before the command parses its flags. */
export const loadConfig = (name: string, commands: ReadonlyArray<string>, env: NodeJS.ProcessEnv = process.env): Config | undefined => {
  command = name
  const where = configPath(env)
  if (where === undefined) return (config = undefined)
  let text: string
  try {
    text = readFileSync(where.path, "utf8")
  } catch (e) {
    if (!where.explicit && (e as NodeJS.ErrnoException).code === "ENOENT") return (config = undefined)
    throw new UsageError(`config file ${where.path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`)
  }
  return (config = parseConfig(where.path, text, commands))
}

/** The config file's value of `flag` for the running command, if it has one (its section first, then the top). */
const configured = (flag: string): string | undefined => {
  if (config === undefined) return undefined
  return (command === undefined ? undefined : config.sections.get(command)?.get(flag)?.value) ?? config.global.get(flag)
}

/** The commands the config file has a section for. */
export const configSections = (): ReadonlyArray<string> => [...(config?.sections.keys() ?? [])]

/** A setting in a command's section that none of its flags has is a mistake: say where, and what was meant (`up` checks its children's sections before it starts them). */
export const checkConfigFor = (name: string, spec: Spec) => {
  const section = config?.sections.get(name)
  if (section === undefined) return
  const known = [...Object.keys(spec), ...globalSettings]
  for (const [flag, { line }] of section) {
    if (known.includes(flag) || Object.values(spec).some((o) => o.aliases?.includes(flag))) continue
    const meant = didYouMean(flag, known)
    throw new UsageError(`${config!.file}:${line}: [${name}] has no setting '${flag}'${meant === undefined ? "" : `; did you mean '${meant}'?`}`)
  }
}

const checkSection = (spec: Spec) => {
  if (command !== undefined) checkConfigFor(command, spec)
}

/** Settings every command takes (main reads them before the command runs). */
export const globalSettings = ["log-level", "log-format"]

/** The config file's value of one of the global settings, for main. */
export const configuredGlobal = (flag: string): string | undefined => configured(flag)

export interface Parsed {
  readonly values: Record<string, string | undefined>
  readonly flags: Record<string, boolean>
  readonly rest: ReadonlyArray<string>
}

/**
 * The exit codes of every command: 0 it worked, 1 it failed (an error at run
 * time: a refused data folder, a port in use, a command that failed),
 * 2 usage (an unknown command or flag, a bad value), 3 not healthy
 * (`bulletin health`: the role does not answer).
 */
export const ExitCode = { ok: 0, failure: 1, usage: 2, unhealthy: 3 } as const

/** A command line that cannot be run as written: exit 2, with what was wrong (and what was meant, where it can tell). */
export class UsageError extends Error {}

/** The edit distance of two short words (for "did you mean"). */
const distance = (a: string, b: string): number => {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1))
      diagonal = above
    }
  }
  return row[b.length]!
}

/** The closest of `known` to `word`, if it is close enough to be a typo. */
export const didYouMean = (word: string, known: ReadonlyArray<string>): string | undefined => {
  let best: string | undefined
  let bestDistance = Number.POSITIVE_INFINITY
  for (const k of known) {
    const d = distance(word, k)
    if (d < bestDistance) [best, bestDistance] = [k, d]
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(best.length / 3)) ? best : undefined
}

const truthy = (s: string | undefined): boolean | undefined => {
  if (s === undefined || s === "") return undefined
  if (/^(1|true|yes|on)$/i.test(s)) return true
  if (/^(0|false|no|off)$/i.test(s)) return false
  return undefined
}

export const parse = (argv: ReadonlyArray<string>, spec: Spec): Parsed => {
  checkSection(spec)
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = { help: { type: "boolean", short: "h" } }
  for (const [k, v] of Object.entries(spec)) {
    options[k] = { type: v.boolean ? "boolean" : "string" }
    for (const a of v.aliases ?? []) options[a] = { type: v.boolean ? "boolean" : "string" }
  }
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true })
  } catch (e) {
    const unknown = /Unknown option '(-{1,2})([^']+)'/.exec((e as Error).message)
    if (unknown !== null) {
      const meant = didYouMean(unknown[2]!, Object.keys(options))
      throw new UsageError(`unknown option '${unknown[1]}${unknown[2]}'${meant === undefined ? "" : `; did you mean --${meant}?`} (--help lists them)`)
    }
    throw new UsageError((e as Error).message.split(". ")[0]!)
  }
  const { values, positionals } = parsed
  const out: Record<string, string | undefined> = {}
  const flags: Record<string, boolean> = { help: values.help === true }
  for (const [k, v] of Object.entries(spec)) {
    const given = [k, ...(v.aliases ?? [])].map((name) => values[name]).find((x) => x !== undefined)
    const fromEnv = envNames(k, v).map((name) => process.env[name]).find((x) => x !== undefined && x !== "")
    if (v.boolean) {
      const setting = [fromEnv, configured(k)].map(truthy).find((x) => x !== undefined)
      flags[k] = given === true || (given === undefined && setting === true)
    } else {
      out[k] = typeof given === "string" ? given : fromEnv ?? configured(k) ?? v.default
    }
  }
  return { values: out, flags, rest: positionals }
}

export const usage = (command: string, summary: string, spec: Spec): string => {
  const lines = [`bulletin ${command}: ${summary}`, "", "Options:"]
  for (const [k, v] of Object.entries(spec)) {
    const env = ` [env ${envNames(k, v).join(" or ")}]`
    const def = v.default === undefined ? "" : ` (default ${v.default})`
    const aliases = (v.aliases ?? []).map((a) => `, --${a}`).join("")
    lines.push(`  --${k}${aliases}${v.boolean ? "" : " VALUE"}  ${v.help}${def}${env}`)
  }
  lines.push("", "Every option can also be set in the config file (bulletin help config); flags win, then the environment, then the file.")
  return lines.join("\n")
}

export const int = (s: string | undefined, name: string, min = 0): number => {
  const n = Number(s)
  if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a number >= ${min}, got '${s}'`)
  return n
}

/** A TCP port: a whole number from 0 (any free one) to 65535. */
export const portNumber = (s: string | undefined, name: string): number => {
  const n = Number(s)
  if (s === undefined || s.trim() === "" || !Number.isInteger(n) || n < 0 || n > 65_535) throw new UsageError(`--${name} must be a port number from 0 to 65535, got '${s}'`)
  return n
}

/** `host` or `host:port` or a full endpoint, to a tcp endpoint with `port` by default. */
export const endpoint = (hostOrEndpoint: string, port: number): string => {
  if (hostOrEndpoint.includes("://")) return hostOrEndpoint
  if (/:\d+$/.test(hostOrEndpoint)) return `tcp://${hostOrEndpoint}`
  return `tcp://${hostOrEndpoint}:${port}`
}

/** What a bot touches after each acknowledged post and `bulletin health bot` checks (BOT_ALIVE_FILE). */
export const botAliveFile = join(tmpdir(), "bulletin-bot.alive")
/** A bot is healthy while its last acknowledged post is at most this old. */
export const botAliveMs = 30_000

export const Ports = { brokerFrontend: 5555, brokerBackend: 5556, proxyFrontend: 5557, proxyBackend: 5558, reference: 5559, peer: 5560 } as const

/** Where roles started with --inspect send their machines' events: the relay of `bulletin inspector` (default port 8080). */
export const inspectUrlDefault = "ws://127.0.0.1:8080"
