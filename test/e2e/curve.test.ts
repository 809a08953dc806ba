import { Duration, Effect, Queue } from "effect"
import * as zmq from "zeromq"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { defaultClientConfig, makeClient } from "../../src/actors/client.ts"
import { decode, encode } from "../../src/protocol/codec.ts"
import { encodeEnvelope } from "../../src/protocol/messages.ts"
import { generateKey } from "../../src/transport/keys.ts"
import { layerZmq } from "../../src/transport/zmq.ts"
import { type Cluster, curveClient, serverHost, startCluster, stopAll } from "../support/procs.ts"

/**
 * The attacks of issue 13 that need a cluster member, against a cluster with
 * its key (the default): each one refused, because whoever does not hold the
 * cluster's key cannot connect to a cluster port (CURVE, and a ZAP handler
 * that admits only that key).
 */
const host = "127.81.14.1"
let cluster: Cluster
beforeAll(async () => {
  cluster = await startCluster(host, 2)
}, 60_000)
afterAll(stopAll)

const stamp = { clock: 1, timestampMs: Date.now() }
/** One request on a fresh REQ: the reply's data, or "no reply" within `ms`. */
const ask = async (endpoint: string, service: string, data: Record<string, unknown>, options: Record<string, unknown> = {}, ms = 1_500) => {
  const req = new zmq.Request({ linger: 0, receiveTimeout: ms, ...options })
  req.connect(endpoint)
  try {
    await req.send(encodeEnvelope(service, data, stamp))
    const [reply] = await req.receive()
    const m = decode(reply!)
    return m.ok ? (m.value as { data: Record<string, unknown> }).data : { unreadable: true }
  } catch {
    return "no reply" as const
  } finally {
    req.close()
  }
}
/** An attacker's keys: CURVE with the cluster's public key (it is public) but its own key pair. */
const stranger = () => {
  const own = generateKey()
  return { curveServerKey: curveClient().curveServerKey, curvePublicKey: own.publicKey, curveSecretKey: own.secretKey }
}
const reference = `tcp://${host}:5559`
const peer = (i: number) => `tcp://${serverHost(host, i)}:5560`

describe("a cluster with its key", () => {
  it("lets its members in: the reference lists the servers, a peer answers (a sanity check with the key)", async () => {
    const list = await ask(reference, "list", {}, curveClient())
    expect(list).not.toBe("no reply")
    expect((list as { list: Array<{ name: string }> }).list.map((e) => e.name).sort()).toEqual(["server-1", "server-2"])
    expect(await ask(peer(1), "ping", { from: "probe" }, curveClient())).toMatchObject({ status: "OK" })
  })

  it("refuses a fake server: no rank, no heartbeat, no list without the key (plain or with a key of its own)", async () => {
    for (const options of [{}, stranger()]) {
      expect(await ask(reference, "rank", { user: "mallory", addr: "tcp://10.6.6.6:5560" }, options)).toBe("no reply")
      expect(await ask(reference, "list", {}, options)).toBe("no reply")
    }
    const list = (await ask(reference, "list", {}, curveClient())) as { list: Array<{ name: string }> }
    expect(list.list.map((e) => e.name)).not.toContain("mallory")
  })

  it("refuses elections, clock corrections and op-log dumps on the peer ports from outside", async () => {
    const before = (await ask(peer(1), "clock", {}, curveClient())) as { time: number }
    for (const options of [{}, stranger()]) {
      expect(await ask(peer(1), "election", { from: "mallory", rank: 64, term: { epoch: 10 ** 13, rank: 64 } }, options)).toBe("no reply")
      expect(await ask(peer(1), "clockAdjust", { offsetMs: 300_000, from: "server-2", round: 99 }, options)).toBe("no reply")
      expect(await ask(peer(2), "replicate", { vector: {} }, options)).toBe("no reply")
    }
    const after = (await ask(peer(1), "clock", {}, curveClient())) as { time: number }
    expect(Math.abs(after.time - before.time)).toBeLessThan(60_000)
  })

  it("gives a rogue back end no client request, and a forged publication reaches nobody", async () => {
    const rogue = new zmq.Dealer({ linger: 0, receiveTimeout: 200 })
    rogue.connect(`tcp://${host}:5556`)
    const forger = new zmq.Publisher({ linger: 0 })
    forger.connect(`tcp://${host}:5557`)
    let stolen = 0
    const steal = (async () => {
      for (;;) {
        try {
          await rogue.receive()
          stolen += 1
        } catch (e) {
          if (rogue.closed) return
          if ((e as { code?: string }).code !== "EAGAIN") return
        }
      }
    })()
    const outcome = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const c = yield* makeClient({ ...defaultClientConfig, broker: cluster.brokerFrontend, proxy: cluster.proxyBackend })
          yield* c.login("victim")
          yield* c.channel("watched")
          yield* c.subscribe("watched")
          yield* Effect.sleep(Duration.millis(300))
          for (let i = 0; i < 20; i++) {
            yield* Effect.promise(() => forger.send(["watched", encodeEnvelope("publish", { user: "victim", channel: "watched", message: `forged ${i}` }, stamp)]))
            yield* Effect.promise(() => forger.send(["servers", encodeEnvelope("election", { coordinator: "mallory", rank: 64, term: { epoch: 10 ** 13, rank: 64 } }, stamp)]))
            yield* Effect.promise(() => forger.send(["replication", encode({ service: "replication", data: { op: { kind: "publish", user: "victim", channel: "watched", message: "forged op", origin: "server-1", seq: 999_999, clock: 5, timestamp: 0 }, clock: 5 } })]))
          }
          const acked: Array<string> = []
          for (let i = 0; i < 20; i++) if ((yield* c.publish("watched", `real ${i}`)).ok) acked.push(`real ${i}`)
          const live: Array<string> = []
          yield* Effect.gen(function* () {
            for (;;) {
              const p = yield* Queue.take(c.publications)
              if (p.service === "publish") live.push(p.message)
            }
          }).pipe(Effect.timeoutOption(Duration.millis(1_000)))
          const history = yield* c.call("history", { channel: "watched", after: 0, limit: 500 })
          return { acked, live, history: (history.data.messages as Array<{ message: string }>).map((m) => m.message) }
        }),
      ).pipe(Effect.provide(layerZmq())),
    )
    rogue.close()
    forger.close()
    await steal
    expect(stolen).toBe(0)
    expect(outcome.acked).toHaveLength(20)
    expect(outcome.history.filter((m) => m.startsWith("real"))).toEqual(outcome.acked)
    expect(outcome.history.some((m) => m.startsWith("forged"))).toBe(false)
    expect(outcome.live.some((m) => m.startsWith("forged"))).toBe(false)
    // Nobody follows the announced fake coordinator.
    const views = await Promise.all([1, 2].map((i) => ask(peer(i), "ping", { from: "probe" }, curveClient())))
    for (const v of views) expect((v as { coordinator?: string }).coordinator).not.toBe("mallory")
  })
})
