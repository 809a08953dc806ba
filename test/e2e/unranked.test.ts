import { Effect } from "effect"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { defaultClientConfig, makeClient } from "../../src/actors/client.ts"
import { layerZmq } from "../../src/transport/zmq.ts"
import { spawnBulletin, stopAll, tempDir } from "../support/procs.ts"

/**
 * A server the reference has not ranked is not one of the cluster's (issue
 * 13): it would answer from a store nobody replicates to. It takes no
 * client request until it has a rank, then serves.
 */
const host = "127.81.18.1"
afterAll(stopAll)

const ask = (ms: number) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const c = yield* makeClient({ ...defaultClientConfig, broker: `tcp://${host}:5555`, proxy: `tcp://${host}:5558`, requestTimeoutMs: ms, attemptsMax: 1 })
        return yield* Effect.result(c.channels())
      }),
    ).pipe(Effect.provide(layerZmq())),
  )

describe("a server without a rank", () => {
  it("serves no client until the reference ranks it", async () => {
    const broker = spawnBulletin("broker", ["broker", "--host", host])
    const proxy = spawnBulletin("proxy", ["proxy", "--host", host])
    await Promise.all([broker.waitFor(/broker: tcp/), proxy.waitFor(/proxy: tcp/)])
    const server = spawnBulletin("server-1", ["server", "--name", "server-1", "--data", join(tempDir("unranked"), "server-1"), "--broker", host, "--proxy", host, "--reference", host, "--host", "127.81.18.11"])
    await server.waitFor(/not serving clients until it gives one/)
    const before = await ask(1_000)
    expect(before._tag).toBe("Failure") // nobody answers: the only server is not serving
    const reference = spawnBulletin("reference", ["reference", "--host", host])
    await reference.waitFor(/reference: serving/)
    await server.waitFor(/serving requests/, 30_000)
    const after = await ask(2_500)
    expect(after._tag === "Success" && after.success.ok).toBe(true)
  }, 60_000)
})
