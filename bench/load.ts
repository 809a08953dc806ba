/**
 * `bulletin bench --broker HOST [...]`: a load generator for any running
 * cluster that speaks the standard protocol (like `nats bench`): C clients,
 * each a DEALER to the broker with up to W requests in flight, a mix of
 * publish / message / history for S seconds; every client also subscribes
 * to the load's channel and to its own name, so lost publications are counted.
 * It prints requests/s, latency percentiles, errors, timeouts, publications
 * received and lost, and the load generator's own CPU; `--json` prints one
 * JSON object instead.
 */
import * as zmq from "zeromq"
import { decode, encode } from "../src/protocol/codec.ts"
import { Ports, type Spec, UsageError, endpoint, parse, usage } from "../src/cli/options.ts"

export const loadSpec: Spec = {
  broker: { help: "the cluster's broker host (port 5555), or tcp://HOST:PORT" },
  proxy: { help: "the cluster's proxy host (port 5558), or tcp://HOST:PORT (default: the broker's host)" },
  clients: { default: "8", help: "concurrent clients (one DEALER each); a list (1,4,16,64,256) runs one load per count and prints the curve" },
  window: { default: "1", help: "requests in flight per client" },
  seconds: { default: "10", help: "how long to send" },
  mix: { default: "publish:1", help: "weights of the request kinds, e.g. publish:8,message:1,history:1" },
  "msg-bytes": { default: "32", help: "size of each post's text" },
  "timeout-ms": { default: "5000", help: "a request unanswered this long counts as a timeout" },
  json: { boolean: true, help: "print one JSON object (for scripts)" },
  seed: { default: "1", help: "seed of the request mix" },
}

const kinds = ["publish", "message", "history"] as const
type Kind = (typeof kinds)[number]

export const parseMix = (text: string): Array<[Kind, number]> => {
  const mix = text.split(",").map((part) => {
    const [k, w] = part.split(":")
    if (!kinds.includes(k as Kind)) throw new UsageError(`--mix: unknown kind '${k}' (publish, message, history)`)
    const weight = w === undefined ? 1 : Number(w)
    if (!Number.isFinite(weight) || weight < 0) throw new UsageError(`--mix: weight of ${k} must be a number ≥ 0, got '${w}'`)
    return [k as Kind, weight] as [Kind, number]
  })
  if (mix.reduce((a, [, w]) => a + w, 0) <= 0) throw new UsageError("--mix: the weights add up to 0")
  return mix
}

const percentile = (sorted: ReadonlyArray<number>, p: number) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!)

const int = (v: string | undefined, name: string, min: number) => {
  const n = Number(v)
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got '${v}'`)
  return n
}

export interface LoadResult {
  readonly clients: number
  readonly window: number
  readonly seconds: number
  readonly mix: Record<string, number>
  readonly requests: number
  readonly requestsPerSecond: number
  readonly ok: number
  readonly errors: number
  readonly errorSamples: ReadonlyArray<string>
  readonly timeouts: number
  readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number }
  readonly publications: { readonly expected: number; readonly received: number; readonly lost: number }
  readonly loadGeneratorCpu: number
}

export const runLoad = async (argv: ReadonlyArray<string>): Promise<LoadResult | undefined> => {
  const p = parse(argv, loadSpec)
  if (p.flags.help) {
    console.log(usage("bench --broker HOST", "load any running cluster (standard protocol) and measure it", loadSpec))
    return undefined
  }
  const v = p.values
  const brokerAt = endpoint(v.broker!, Ports.brokerFrontend)
  const proxyAt = endpoint(v.proxy ?? (v.broker!.startsWith("tcp://") ? new URL(v.broker!.replace("tcp://", "http://")).hostname : v.broker!), Ports.proxyBackend)
  const counts = v.clients!.split(",").map((c) => int(c, "clients", 1))
  const window = int(v.window, "window", 1)
  const seconds = Number(v.seconds)
  if (!(seconds > 0 && seconds <= 3_600)) throw new UsageError(`--seconds must be within (0, 3600], got '${v.seconds}'`)
  const mix = parseMix(v.mix!)
  const msgBytes = int(v["msg-bytes"], "msg-bytes", 1)
  const timeoutMs = int(v["timeout-ms"], "timeout-ms", 1)
  let seed = int(v.seed, "seed", 0) >>> 0 || 1
  const random = () => {
    seed ^= seed << 13
    seed ^= seed >>> 17
    seed ^= seed << 5
    return (seed >>> 0) / 2 ** 32
  }
  const totalWeight = mix.reduce((a, [, w]) => a + w, 0)
  const pick = (): Kind => {
    let r = random() * totalWeight
    for (const [k, w] of mix) if ((r -= w) < 0) return k
    return mix[mix.length - 1]![0]
  }

  const once = async (clients: number): Promise<LoadResult> => {
    const run = Date.now().toString(36)
    const channel = `load-${run}`
    const names = Array.from({ length: clients }, (_, c) => `load-${run}-${c}`)
    const pad = "x".repeat(Math.max(0, msgBytes - 12))
    const stamp = (clock: number) => ({ timestamp: Date.now(), clock })
  
    // Subscribers first (one per client: the channel and its own name), so nothing is missed for want of a subscription.
    const subs = names.map((name) => {
      const s = new zmq.Subscriber({ linger: 0, receiveHighWaterMark: 1_000_000 })
      s.connect(proxyAt)
      s.subscribe(channel)
      s.subscribe(name)
      return s
    })
    let received = 0
    let reading = true
    const readers = subs.map(async (s) => {
      while (reading) {
        try {
          const [topic] = await s.receive()
          const t = topic!.toString()
          if (t === channel || names.includes(t)) received += 1
        } catch {
          return
        }
      }
    })
  
    // One DEALER per client; a reply is matched to its request by `id` when the server echoes it (ours does), else in order.
    const socks = names.map(() => {
      const d = new zmq.Dealer({ linger: 0, sendHighWaterMark: 100_000, receiveHighWaterMark: 100_000, receiveTimeout: 250 })
      d.connect(brokerAt)
      return d
    })
    const call = async (d: zmq.Dealer, service: string, data: Record<string, unknown>) => {
      await d.send(["", encode({ service, data: { ...data, ...stamp(1) } })])
      let frames: Array<Buffer> | undefined
      for (let waited = 0; frames === undefined; waited += 250) {
        try {
          frames = await d.receive()
        } catch (e) {
          if (waited >= timeoutMs) throw new Error(`no answer to ${service} from ${brokerAt} within ${timeoutMs} ms`)
        }
      }
      const r = decode(frames[frames.length - 1]!)
      return r.ok ? ((r.value as { data?: Record<string, unknown> }).data ?? {}) : {}
    }
    // Set up: each client logs in, the channel exists.
    for (const [c, d] of socks.entries()) await call(d, "login", { user: names[c] })
    await call(socks[0]!, "channel", { channel })
    await new Promise((r) => setTimeout(r, 500))
  
    const latencies: Array<number> = []
    let sent = 0
    let ok = 0
    let errors = 0
    let timeouts = 0
    let publicationsExpected = 0
    const errorSamples = new Set<string>()
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    const until = t0 + seconds * 1000
  
    await Promise.all(
      socks.map(async (d, c) => {
        const outstanding = new Map<string, { at: number; kind: Kind }>()
        let counter = 0
        let sending = true
        const sendOne = async () => {
          const kind = pick()
          const id = `${run}-${c}-${(counter += 1)}`
          const text = `${id} ${pad}`.slice(0, Math.max(msgBytes, id.length))
          const data =
            kind === "publish" ? { user: names[c], channel, message: text } : kind === "message" ? { src: names[c], dst: names[c], message: text } : { channel, limit: 20 }
          outstanding.set(id, { at: performance.now(), kind })
          sent += 1
          await d.send(["", encode({ service: kind, data: { ...data, id, ...stamp(counter) } })])
        }
        const receiving = (async () => {
          for (;;) {
            if (!sending && outstanding.size === 0) return
            let frames: Array<Buffer>
            try {
              frames = await d.receive()
            } catch {
              // Nothing for a while: expire what waited too long.
              const now = performance.now()
              for (const [id, o] of outstanding) if (now - o.at > timeoutMs) { outstanding.delete(id); timeouts += 1 }
              if (!sending && outstanding.size === 0) return
              if (sending) for (let i = outstanding.size; i < window && performance.now() < until; i++) await sendOne()
              continue
            }
            const r = decode(frames[frames.length - 1]!)
            const replyData = r.ok ? (r.value as { data?: Record<string, unknown> }).data ?? {} : {}
            const id = typeof replyData.id === "string" && outstanding.has(replyData.id) ? replyData.id : outstanding.keys().next().value
            const o = id === undefined ? undefined : outstanding.get(id)
            if (o !== undefined && id !== undefined) {
              outstanding.delete(id)
              latencies.push(performance.now() - o.at)
              const status = replyData.status
              if (status === "OK" || status === "sucesso" || Array.isArray(replyData.messages)) {
                ok += 1
                // A post reaches every client (all subscribe to the channel); a private message, its one recipient.
                if (o.kind === "publish") publicationsExpected += clients
                if (o.kind === "message") publicationsExpected += 1
              } else {
                errors += 1
                if (errorSamples.size < 5) errorSamples.add(String(replyData.message ?? replyData.description ?? "unreadable reply").slice(0, 120))
              }
            }
            if (performance.now() >= until) sending = false
            while (sending && outstanding.size < window) await sendOne()
          }
        })()
        for (let i = 0; i < window; i++) await sendOne()
        await receiving
      }),
    )
    const wall = (performance.now() - t0) / 1000
    const cpu = process.cpuUsage(cpu0)
    // The last publications: a moment to arrive.
    const deadline = performance.now() + 2_000
    while (received < publicationsExpected && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    reading = false
    for (const s of [...subs, ...socks]) s.close()
    await Promise.allSettled(readers)
    latencies.sort((a, b) => a - b)
    const result: LoadResult = {
      clients,
      window,
      seconds,
      mix: Object.fromEntries(mix),
      requests: sent,
      requestsPerSecond: (ok + errors) / wall,
      ok,
      errors,
      errorSamples: [...errorSamples],
      timeouts,
      latencyMs: { p50: percentile(latencies, 50), p90: percentile(latencies, 90), p99: percentile(latencies, 99), max: latencies[latencies.length - 1] ?? NaN },
      publications: { expected: publicationsExpected, received: Math.min(received, publicationsExpected), lost: Math.max(0, publicationsExpected - received) },
      loadGeneratorCpu: (cpu.user + cpu.system) / 1e6 / wall,
    }
    return result
  }
  if (counts.length > 1) {
    const results: Array<LoadResult> = []
    for (const c of counts) results.push(await once(c))
    if (p.flags.json) console.log(JSON.stringify(results))
    else {
      console.log(`bench: the curve, ${window} in flight per client, ${seconds} s each, mix ${v.mix}, ${msgBytes}-byte posts, against ${brokerAt}`)
      console.log("  clients   requests/s   p50 ms   p99 ms   errors   timeouts   publications lost   generator CPU")
      for (const r of results) console.log(`${String(r.clients).padStart(9)}${r.requestsPerSecond.toFixed(0).padStart(13)}${r.latencyMs.p50.toFixed(2).padStart(9)}${r.latencyMs.p99.toFixed(2).padStart(9)}${String(r.errors).padStart(9)}${String(r.timeouts).padStart(11)}${String(r.publications.lost).padStart(20)}${`${(r.loadGeneratorCpu * 100).toFixed(0)} %`.padStart(16)}`)
    }
    return results[results.length - 1]
  }
  const clients = counts[0]!
  const result = await once(clients)
  if (p.flags.json) console.log(JSON.stringify(result))
  else {
    const f = (x: number) => x.toFixed(2)
    console.log(`bench: ${clients} clients x ${window} in flight, ${seconds} s, mix ${v.mix}, ${msgBytes}-byte posts, against ${brokerAt} / ${proxyAt}`)
    console.log(`  ${result.requestsPerSecond.toFixed(0)} requests/s (${result.ok} ok, ${result.errors} errors, ${result.timeouts} timeouts, ${result.requests} sent)`)
    console.log(`  latency ms: p50 ${f(result.latencyMs.p50)}  p90 ${f(result.latencyMs.p90)}  p99 ${f(result.latencyMs.p99)}  max ${f(result.latencyMs.max)}`)
    console.log(`  publications: ${result.publications.received} of ${result.publications.expected} received, ${result.publications.lost} lost`)
    console.log(`  load generator CPU: ${(result.loadGeneratorCpu * 100).toFixed(0)} % of one core`)
    for (const e of result.errorSamples) console.log(`  error: ${e}`)
  }
  return result
}
