import { Duration, Effect, Queue } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { defaultClientConfig, makeClient } from "../../src/actors/client.ts"
import { defaultTransportLimits } from "../../src/transport/Transport.ts"
import { layerZmq } from "../../src/transport/zmq.ts"
import { type Cluster, startCluster, stopAll } from "../support/procs.ts"

/**
 * A subscriber that stops reading loses publications past its queues (here
 * made small: 100 messages). Every post carries its origin's previous post
 * on the channel (`prev`): our client sees the gap when reading resumes and
 * fills it from history, so nothing acknowledged is missing, in order per
 * origin, nothing twice.
 */
const host = "127.81.17.1"
let cluster: Cluster
beforeAll(async () => {
  cluster = await startCluster(host, 2)
}, 60_000)
afterAll(stopAll)

describe("a paused subscriber", () => {
  it("gets every post of a channel after all: what was lost on the way is filled from history", async () => {
    const posts = 3_000
    const small = layerZmq({ ...defaultTransportLimits, subscriberQueueMessages: 100, highWaterMarkMessages: 100 })
    const result = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const watcher = yield* makeClient({ ...defaultClientConfig, broker: cluster.brokerFrontend, proxy: cluster.proxyBackend }).pipe(Effect.provide(small))
          const writer = yield* makeClient({ ...defaultClientConfig, broker: cluster.brokerFrontend, proxy: cluster.proxyBackend }).pipe(Effect.provide(layerZmq()))
          yield* watcher.login("watcher")
          yield* writer.login("writer")
          yield* writer.channel("gaps")
          yield* watcher.subscribe("gaps")
          yield* Effect.sleep(Duration.millis(300))
          // The watcher reads nothing while the writer posts.
          let acked = 0
          for (let i = 0; i < posts; i++) if ((yield* writer.publish("gaps", `post ${i}`)).ok) acked += 1
          const got: Array<{ message: string; origin?: string; seq?: number; filled?: boolean }> = []
          yield* Effect.gen(function* () {
            while (got.length < acked) {
              const p = yield* Queue.take(watcher.publications)
              if (p.service === "publish") got.push(p)
            }
          }).pipe(Effect.timeoutOption(Duration.millis(30_000)))
          return { acked, got, gaps: watcher.gaps() }
        }),
      ),
    )
    const filled = result.got.filter((p) => p.filled === true).length
    console.log(`real: ${result.acked} posts acknowledged; the paused subscriber got ${result.got.length} (${result.got.length - filled} live, ${filled} filled from history); gaps unfilled: ${result.gaps.unfilled}`)
    expect(result.acked).toBe(posts)
    expect(filled).toBeGreaterThan(0) // the small queues did lose some on the way
    const messages = result.got.map((p) => p.message)
    expect(new Set(messages).size).toBe(messages.length) // nothing twice
    expect(new Set(messages)).toEqual(new Set(Array.from({ length: posts }, (_, i) => `post ${i}`)))
    // In order per origin.
    for (const origin of new Set(result.got.map((p) => p.origin))) {
      const seqs = result.got.filter((p) => p.origin === origin).map((p) => p.seq!)
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
    }
    expect(result.gaps.unfilled).toBe(0)
  }, 120_000)
})
