import type { ClusterKey } from "../transport/keys.ts"
import { ExitCode, Ports, type Spec, endpoint, int, parse, usage } from "./options.ts"

/**
 * `bulletin status`: the state of a running cluster as a table (or JSON),
 * asked of the reference (its server list) and of every server listed (its
 * coordinator, term, replication position, lag and request rate over
 * `status`, or `ping` for a server without it; its clock over `clock`). Each question
 * is a fresh REQ with a timeout: a server that does not answer is shown as
 * such, never waited for. Like the healthcheck, it loads neither effect nor
 * the roles.
 */
export const spec: Spec = {
  reference: { env: "REFERENCE_ADDR", default: "127.0.0.1", help: "the reference's host (or endpoint)" },
  key: { env: "BULLETIN_KEY_FILE", help: "the cluster's key file (the reference and peer ports take only the key), or BULLETIN_CLUSTER_KEY" },
  open: { boolean: true, env: "BULLETIN_OPEN", help: "the cluster runs in open mode (no key)" },
  timeout: { default: "1500", help: "milliseconds to wait for each answer" },
  json: { boolean: true, help: "print one JSON object instead of the table" },
}

interface ServerStatus {
  readonly name: string
  readonly rank: number
  readonly addr?: string
  readonly coordinator?: string
  readonly term?: { readonly epoch: number; readonly rank: number }
  readonly offsetMs?: number
  readonly rttMs?: number
  /** From `status` (servers that have it): ops in its store, and per origin server the contiguous prefix it holds. */
  readonly ops?: number
  readonly vector?: Readonly<Record<string, number>>
  /** Ops it lacks that the most advanced server answering holds (summed over origins). */
  readonly behindOps?: number
  /** Ops it holds past a hole, being filled by a pull. */
  readonly gapOps?: number
  /** Live replication lag over its last second (ms): apply time minus the op's timestamp. */
  readonly lagP50Ms?: number
  readonly lagP99Ms?: number
  /** Client requests answered per second over its last few seconds. */
  readonly requestsPerSecond?: number
  readonly serving?: boolean
  readonly error?: string
}

const counted = (u: unknown): number | undefined => (typeof u === "number" && Number.isFinite(u) && u >= 0 ? u : undefined)

/** A `status` reply's extra fields, each kept only if it has the expected shape (a server may be of another version). */
const statusFields = (d: Record<string, unknown>): Partial<ServerStatus> => {
  const vector = typeof d.vector === "object" && d.vector !== null && !Array.isArray(d.vector)
    ? Object.fromEntries(Object.entries(d.vector as Record<string, unknown>).flatMap(([o, n]) => (counted(n) === undefined ? [] : [[o, n as number]])))
    : undefined
  const fields = { ops: counted(d.ops), vector, gapOps: counted(d.gapOps), lagP50Ms: counted(d.lagP50Ms), lagP99Ms: counted(d.lagP99Ms), requestsPerSecond: counted(d.requestsPerSecond), serving: typeof d.serving === "boolean" ? d.serving : undefined }
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined))
}

/** Per server, the ops it lacks that the most advanced server holds, origin by origin. */
const behind = (servers: ReadonlyArray<ServerStatus>): ReadonlyArray<ServerStatus> => {
  const most = new Map<string, number>()
  for (const s of servers) for (const [o, n] of Object.entries(s.vector ?? {})) most.set(o, Math.max(most.get(o) ?? 0, n))
  return servers.map((s) => {
    if (s.vector === undefined) return s
    let n = 0
    for (const [o, top] of most) n += top - (s.vector[o] ?? 0)
    return { ...s, behindOps: n }
  })
}

export const runStatus = async (argv: ReadonlyArray<string>) => {
  const p = parse(argv, spec)
  if (p.flags.help) return console.log(usage("status", "the servers the reference lists: rank, address, whom each follows, clock offset, ops held, ops behind, replication lag, requests/s; exit 1 if they disagree or one does not answer", spec))
  const timeoutMs = int(p.values.timeout, "timeout", 1)
  let key: ClusterKey | undefined
  if (!p.flags.open) {
    const { securityFrom } = await import("../transport/keys.ts")
    const sec = securityFrom({ open: false, keyFile: p.values.key, env: process.env })
    key = sec.mode === "curve" ? sec.key : undefined
  }
  const { askOnce } = await import("./ask.ts")
  const ask = async (at: string, service: string) => {
    try {
      return await askOnce(at, service, { timeoutMs, key, from: "status" })
    } catch (e) {
      const m = (e as Error).message ?? String(e)
      throw new Error(/timed out|not possible/i.test(m) ? `no answer within ${timeoutMs} ms` : m)
    }
  }
  const reference = endpoint(p.values.reference!, Ports.reference)
  let list: Array<{ name: string; rank: number; addr?: string }>
  try {
    list = ((await ask(reference, "list")).list ?? []) as typeof list
  } catch (e) {
    console.error(`bulletin status: the reference at ${reference}: ${(e as Error).message}${key === undefined && !p.flags.open ? " (no key given: --key FILE, or --open for an open cluster)" : ""}`)
    process.exit(ExitCode.failure)
  }
  const answers: Array<ServerStatus> = await Promise.all(
    list.map(async (s): Promise<ServerStatus> => {
      if (s.addr === undefined) return { ...s, error: "no address listed" }
      try {
        // `status` is ping's answer and more; a server without it answers "erro": ask `ping`.
        const full = await ask(s.addr, "status")
        const ping = full.status === "erro" ? await ask(s.addr, "ping") : full
        const t0 = Date.now()
        const { time } = await ask(s.addr, "clock")
        const t1 = Date.now()
        return { ...s, coordinator: ping.coordinator as string | undefined, term: ping.term as ServerStatus["term"], offsetMs: Number(time) - (t0 + t1) / 2, rttMs: t1 - t0, ...(full.status === "erro" ? {} : statusFields(full)) }
      } catch (e) {
        return { ...s, error: (e as Error).message }
      }
    }),
  )
  const servers = [...behind(answers)].sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }))
  const coordinators = [...new Set(servers.filter((s) => s.error === undefined).map((s) => s.coordinator ?? "(none)"))]
  const agreed = coordinators.length === 1 && coordinators[0] !== "(none)" && servers.every((s) => s.error === undefined)
  if (p.flags.json) {
    console.log(JSON.stringify({ reference, agreed, coordinator: agreed ? coordinators[0] : undefined, servers }))
  } else {
    const rows = [["SERVER", "RANK", "ADDRESS", "FOLLOWS", "TERM", "CLOCK", "RTT", "OPS", "BEHIND", "LAG", "REQ/S"]]
    const orDash = (n: number | undefined, unit = "") => (n === undefined ? "-" : `${n}${unit}`)
    for (const s of servers) {
      rows.push(
        s.error !== undefined
          ? [s.name, String(s.rank), s.addr ?? "-", `(${s.error})`, "", "", "", "", "", "", ""]
          : [s.name, String(s.rank), s.addr!, s.coordinator === s.name ? `${s.coordinator} (itself)` : (s.coordinator ?? "(none)"), s.term === undefined ? "-" : `${s.term.epoch}/${s.term.rank}`, `${s.offsetMs! >= 0 ? "+" : ""}${s.offsetMs!.toFixed(1)} ms`, `${s.rttMs} ms`,
              orDash(s.ops), orDash(s.behindOps), orDash(s.lagP50Ms, " ms"), orDash(s.requestsPerSecond)],
      )
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
    for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd())
    console.log(servers.length === 0 ? "no server registered" : agreed ? `${servers.length} servers, all following ${coordinators[0]}` : `not agreed: ${coordinators.join(", ")}${servers.some((s) => s.error !== undefined) ? "; some do not answer" : ""}`)
  }
  process.exit(agreed ? ExitCode.ok : ExitCode.failure)
}
