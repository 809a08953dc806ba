import * as zmq from "zeromq"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { decode } from "../../src/protocol/codec.ts"
import { encodeEnvelope } from "../../src/protocol/messages.ts"
import { type Cluster, curveClient, serverHost, startCluster, stopAll } from "../support/procs.ts"

// Berkeley rounds are logged at debug: this test reads them.
process.env.BULLETIN_LOG_LEVEL = "debug"

/**
 * Real processes on loopback: reference, broker, proxy and three servers.
 * The coordinator is killed with SIGKILL; the next-highest is announced on
 * `servers`, Berkeley rounds resume under it, and when the old coordinator
 * comes back (same name, so same rank) it takes over again.
 */
const host = "127.81.6.1"
let cluster: Cluster
let sub: zmq.Subscriber
const announcements: Array<{ at: number; coordinator: string; term?: { epoch: number; rank: number } }> = []

beforeAll(async () => {
  sub = new zmq.Subscriber({ linger: 0 })
  sub.connect(`tcp://${host}:5558`)
  sub.subscribe("servers")
  void (async () => {
    for await (const [topic, body] of sub) {
      const m = decode(body!)
      const data = m.ok ? (m.value as { data?: { coordinator?: string; term?: { epoch: number; rank: number } } }).data : undefined
      if (topic?.toString() === "servers" && data?.coordinator !== undefined) announcements.push({ at: performance.now(), coordinator: data.coordinator, term: data.term })
    }
  })().catch(() => {})
  cluster = await startCluster(host, 3)
}, 60_000)

afterAll(async () => {
  sub.close()
  await stopAll()
})

const ask = async (endpoint: string, service: string, data: Record<string, unknown> = {}) => {
  const req = new zmq.Request({ linger: 0, receiveTimeout: 2_000, ...curveClient() })
  req.connect(endpoint)
  try {
    await req.send(encodeEnvelope(service, data, { clock: 1, timestampMs: Date.now() }))
    const [reply] = await req.receive()
    const m = decode(reply!)
    return (m.ok ? (m.value as { data: Record<string, unknown> }).data : {}) as Record<string, unknown>
  } finally {
    req.close()
  }
}

const until = async <T>(what: string, f: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> => {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const v = await f()
    if (v !== undefined) return v
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const ranked = async () => {
  const { list } = (await ask(`tcp://${host}:5559`, "list")) as { list: Array<{ name: string; rank: number; addr?: string }> }
  return [...list].sort((a, b) => b.rank - a.rank)
}

describe("coordination over real processes", () => {
  it("elects the highest rank, survives its SIGKILL, and gives it back when it returns", async () => {
    const list = await until("three servers listed", async () => {
      const l = await ranked()
      return l.length === 3 ? l : undefined
    })
    expect(list.map((e) => e.addr)).toEqual(list.map((e) => `tcp://${serverHost(host, Number(e.name.split("-")[1]))}:5560`))
    const [first, second, third] = list as [(typeof list)[0], (typeof list)[0], (typeof list)[0]]
    await until(`${first.name} announced`, () => announcements.find((a) => a.coordinator === first.name))
    const firstProc = cluster.servers[Number(first.name.split("-")[1]) - 1]!
    const secondProc = cluster.servers[Number(second.name.split("-")[1]) - 1]!
    const thirdProc = cluster.servers[Number(third.name.split("-")[1]) - 1]!
    await firstProc.waitFor(/Berkeley round \d+: 3 clocks averaged/, 20_000)
    await thirdProc.waitFor(new RegExp(`coordinator is ${first.name}`), 20_000)

    // Kill the coordinator outright: no goodbye, its sockets just vanish.
    const killedAt = performance.now()
    await firstProc.stop("SIGKILL")
    const taken = await until(`${second.name} announced`, () => announcements.find((a) => a.coordinator === second.name && a.at > killedAt), 30_000)
    const takeoverMs = taken.at - killedAt
    console.log(`real: new coordinator ${second.name} announced ${takeoverMs.toFixed(0)} ms after SIGKILL of ${first.name}`)
    const roundsBefore = secondProc.lines.filter((l) => /Berkeley round/.test(l)).length
    await until("a Berkeley round under the new coordinator", () => (secondProc.lines.filter((l) => /Berkeley round \d+: 2 clocks averaged/.test(l)).length > roundsBefore ? true : undefined), 20_000)
    await thirdProc.waitFor(new RegExp(`coordinator is ${second.name}`), 20_000)

    // Both survivors answer `clock` with adjusted times close to each other (same OS clock here).
    const [a, b] = await Promise.all([ask(second.addr!, "clock"), ask(third.addr!, "clock")])
    expect(Math.abs((a.time as number) - (b.time as number))).toBeLessThan(1_000)

    // The old coordinator comes back with its rank and bullies its way back:
    // it may first announce a fresh low term, hear the stand-in lead, and
    // claim a term above it; both others then follow it.
    const returnedAt = performance.now()
    const seen = [secondProc.lines.length, thirdProc.lines.length] as const
    await cluster.startServer(Number(first.name.split("-")[1]))
    const follows = (lines: ReadonlyArray<string>, from: number) => lines.slice(from).some((l) => l.includes(`coordinator is ${first.name},`))
    await until(`${second.name} and ${third.name} follow ${first.name} again`, () => (follows(secondProc.lines, seen[0]) && follows(thirdProc.lines, seen[1]) ? true : undefined), 30_000)
    const later = (x: { epoch: number; rank: number }, y: { epoch: number; rank: number }) => x.epoch > y.epoch || (x.epoch === y.epoch && x.rank > y.rank)
    const standIn = announcements.filter((x) => x.coordinator === second.name).at(-1)!.term!
    const back = await until("a newer term from the returned server", () => announcements.find((x) => x.coordinator === first.name && x.at > returnedAt && later(x.term!, standIn)))
    console.log(`real: ${first.name} back in charge ${(back.at - returnedAt).toFixed(0)} ms after its restart (term ${back.term!.epoch}/${back.term!.rank} over ${standIn.epoch}/${standIn.rank})`)
    expect((await ranked()).find((e) => e.name === first.name)?.rank).toBe(first.rank)
  }, 120_000)
})
