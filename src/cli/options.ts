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

export const parse = (argv: ReadonlyArray<string>, spec: Spec): Parsed => {
  const options: Record<string, { type: "string" | "boolean" }> = { help: { type: "boolean" } }
  for (const [k, v] of Object.entries(spec)) options[k] = { type: v.boolean ? "boolean" : "string" }
  const { values, positionals } = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true })
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
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min}, got '${s}'`)
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
