import { Clock, Effect, Queue } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { LamportClock } from "../machines/lamport.ts"
import { decodeReferenceRequest } from "../protocol/coordination.ts"
import { encodeEnvelope, errorReply } from "../protocol/messages.ts"
import { Transport } from "../transport/Transport.ts"
import { Registry, type RegistrySnapshot } from "./registry.ts"
import { supervised } from "./runtime.ts"

/**
 * The reference service's request handling, without I/O: the Effect actor
 * below serves it on a REP socket, the simulator calls it directly.
 */
export class ReferenceService {
  readonly registry: Registry
  readonly lamport: LamportClock
  readonly #now: () => number
  readonly #ranksChanged: (snapshot: RegistrySnapshot) => void

  constructor(registry: Registry, options: { now: () => number; lamport?: LamportClock; ranksChanged?: (snapshot: RegistrySnapshot) => void }) {
    this.registry = registry
    this.lamport = options.lamport ?? new LamportClock()
    this.#now = options.now
    this.#ranksChanged = options.ranksChanged ?? (() => {})
  }

  handle(frame: Uint8Array): Uint8Array {
    const decoded = decodeReferenceRequest(frame)
    this.lamport.observe(decoded.meta?.clock)
    const now = this.#now()
    const stamp = () => ({ clock: this.lamport.tick(), timestampMs: this.#now() })
    if (!decoded.ok) return errorReply(decoded.service, decoded.description, stamp())
    const req = decoded.value
    switch (req.service) {
      case "rank": {
        const isNew = !this.registry.hasRank(req.user)
        const rank = this.registry.rank(req.user, req.addr, now)
        if (rank === undefined) return errorReply("rank", `no rank for '${req.user}': ${this.registry.serversMax} servers are registered already`, stamp())
        if (isNew) this.#ranksChanged(this.registry.snapshot())
        return encodeEnvelope("rank", { status: "OK", rank }, stamp())
      }
      case "list":
        return encodeEnvelope(
          "list",
          { status: "OK", list: this.registry.list(now).map((e) => (e.addr === undefined ? { name: e.name, rank: e.rank } : { name: e.name, rank: e.rank, addr: e.addr })) },
          stamp(),
        )
      case "heartbeat":
        return this.registry.heartbeat(req.user, now)
          ? encodeEnvelope("heartbeat", { status: "OK" }, stamp())
          : errorReply("heartbeat", `unknown server '${req.user}' (never registered, or dropped as dead): ask for a rank again`, stamp())
    }
  }
}

export interface ReferenceConfig {
  /** Where to bind the REP socket, e.g. tcp://0.0.0.0:5559. */
  readonly bind: string
  /** A server not heard from for this long is dropped from `list`. */
  readonly serverDeadAfterMs: number
  readonly serversMax: number
  /** Where ranks are kept across restarts (a file `ranks.json` in it); none: in memory only. */
  readonly dataDir: string | undefined
  /** Where ranks are kept, if not in `dataDir` (the simulator keeps them on its simulated disk). */
  readonly ranks?: RanksStore
}

/** Durable storage of the rank table. */
export interface RanksStore {
  readonly load: () => RegistrySnapshot | undefined
  /** Durable before it returns. */
  readonly save: (snapshot: RegistrySnapshot) => void
}

/** `ranks.json` in `dir`. */
export const fileRanks = (dir: string): RanksStore => {
  fs.mkdirSync(dir, { recursive: true })
  return { load: () => loadRanks(dir), save: (s) => saveRanks(dir, s) }
}

export const defaultReferenceConfig: ReferenceConfig = { bind: "tcp://127.0.0.1:5559", serverDeadAfterMs: 3_500, serversMax: 64, dataDir: undefined }

const loadRanks = (dir: string): RegistrySnapshot | undefined => {
  const file = path.join(dir, "ranks.json")
  if (!fs.existsSync(file)) return undefined
  const raw = JSON.parse(fs.readFileSync(file, "utf8")) as RegistrySnapshot
  if (!Array.isArray(raw.ranks)) throw new Error(`${file}: not a ranks file`)
  return raw
}

/** Written whole to a temporary file, fsynced, then renamed: a crash leaves the old file or the new one. */
const saveRanks = (dir: string, snapshot: RegistrySnapshot) => {
  const file = path.join(dir, "ranks.json")
  const tmp = `${file}.tmp`
  const fd = fs.openSync(tmp, "w")
  try {
    fs.writeSync(fd, JSON.stringify(snapshot))
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  fs.renameSync(tmp, file)
}

/** The reference role: ranks, liveness and the peer list, on a REP socket (5559). */
export const reference = (config: ReferenceConfig) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const clock = yield* Clock.Clock
    const ranks = config.ranks ?? (config.dataDir === undefined ? undefined : fileRanks(config.dataDir))
    const snapshot = ranks?.load()
    const registry = new Registry({ deadAfterMs: config.serverDeadAfterMs, serversMax: config.serversMax }, snapshot)
    const service = new ReferenceService(registry, {
      now: () => clock.currentTimeMillisUnsafe(),
      ranksChanged: (s) => ranks?.save(s),
    })
    const replier = yield* transport.replier(config.bind, "bind", { cluster: true })
    yield* Effect.logInfo(`reference: serving on ${config.bind}, ${snapshot?.ranks.length ?? 0} ranks known, servers dead after ${config.serverDeadAfterMs} ms`)
    let live = ""
    return yield* supervised(
      "reference",
      Effect.forever(
        Effect.gen(function* () {
          const request = yield* Queue.take(replier.requests)
          yield* request.reply(service.handle(request.frame))
          const now = registry.list(clock.currentTimeMillisUnsafe()).map((e) => `${e.name}#${e.rank}`).join(" ")
          if (now !== live) yield* Effect.logInfo(`reference: live servers: ${(live = now) || "none"}`)
        }),
      ),
    )
  })
