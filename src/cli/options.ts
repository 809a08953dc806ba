import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"

/**
 * Every role reads its settings from flags first, then environment variables
 * (what compose sets), then the standard defaults.
 */
export type Spec = Record<string, { env?: string; default?: string; boolean?: boolean; help: string }>

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

export const parse = (argv: ReadonlyArray<string>, spec: Spec): Parsed => {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = { help: { type: "boolean", short: "h" } }
  for (const [k, v] of Object.entries(spec)) options[k] = { type: v.boolean ? "boolean" : "string" }
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
    if (v.boolean) {
      const envValue = v.env === undefined ? undefined : process.env[v.env]
      flags[k] = values[k] === true || envValue === "1" || envValue === "true"
    } else {
      const given = values[k]
      out[k] = typeof given === "string" ? given : (v.env !== undefined ? process.env[v.env] : undefined) ?? v.default
    }
  }
  return { values: out, flags, rest: positionals }
}

export const usage = (command: string, summary: string, spec: Spec): string => {
  const lines = [`bulletin ${command}: ${summary}`, "", "Options:"]
  for (const [k, v] of Object.entries(spec)) {
    const env = v.env === undefined ? "" : ` [env ${v.env}]`
    const def = v.default === undefined ? "" : ` (default ${v.default})`
    lines.push(`  --${k}${v.boolean ? "" : " VALUE"}  ${v.help}${def}${env}`)
  }
  return lines.join("\n")
}

export const int = (s: string | undefined, name: string, min = 0): number => {
  const n = Number(s)
  if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a number >= ${min}, got '${s}'`)
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
