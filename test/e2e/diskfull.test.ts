import { execFileSync } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { defaultClientConfig, makeClient } from "../../src/actors/client.ts"
import { layerZmq } from "../../src/transport/zmq.ts"
import { spawnBulletin, stopAll } from "../support/procs.ts"

/**
 * A real server whose data folder is on a tiny tmpfs that fills up: it must
 * answer a clear error, keep serving reads, lose nothing it acknowledged, and
 * write again once there is room (lmdb-js used to kill the process with an
 * unhandled rejection). Needs root to mount; skipped, with the reason, where
 * mounting is not allowed.
 */
const mountPoint = mkdtempSync(join(tmpdir(), "bulletin-full-"))
const mountable = (() => {
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", mountPoint], { stdio: "pipe" })
    return true
  } catch (e) {
    console.log(`diskfull: skipped, cannot mount a tmpfs here: ${(e as Error).message.split("\n")[0]}`)
    return false
  }
})()

afterAll(async () => {
  await stopAll()
  if (mountable) execFileSync("umount", ["-l", mountPoint])
})

const host = "127.81.39.1"
const big = "x".repeat(3_900)

describe.skipIf(!mountable)("a server whose disk fills up", () => {
  it("answers a clear error, keeps serving reads, and writes again when space returns", async () => {
    const broker = spawnBulletin("broker", ["broker", "--host", host])
    const proxy = spawnBulletin("proxy", ["proxy", "--host", host])
    await Promise.all([broker.waitFor(/broker: tcp/), proxy.waitFor(/proxy: tcp/)])
    const server = spawnBulletin("server", ["server", "--name", "full-1", "--data", join(mountPoint, "full-1"), "--broker", host, "--proxy", host, "--reference", "none", "--host", host])
    await server.waitFor(/serving requests/)
    const outcome = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const c = yield* makeClient({ ...defaultClientConfig, broker: `tcp://${host}:5555`, proxy: `tcp://${host}:5558` })
          expect((yield* c.login("filler")).ok).toBe(true)
          expect((yield* c.channel("fill")).ok).toBe(true)
          const acked: Array<string> = []
          let refusal: string | undefined
          for (let i = 0; i < 3_000 && refusal === undefined; i++) {
            const r = yield* c.publish("fill", `${i} ${big}`)
            if (r.ok) acked.push(`${i}`)
            else refusal = r.error
          }
          // Reads go on while writes are refused.
          const channels = yield* c.channels()
          const history = yield* c.history({ channel: "fill", limit: 5 })
          execFileSync("mount", ["-o", "remount,size=64m", mountPoint])
          const again = yield* c.publish("fill", "after the disk had room again")
          // Every post, paged forward (a page stays within its byte budget, so long posts take many pages).
          const all: Array<string> = []
          let after: unknown = 0
          for (let page = 0; page < 1_000; page++) {
            const r = yield* c.call("history", { channel: "fill", after, limit: 500 })
            expect(r.ok, r.error).toBe(true)
            const posts = r.data.messages as Array<{ message: string; clock: number; origin: string; seq: number }>
            all.push(...posts.map((m) => m.message.split(" ")[0]!))
            const last = posts.at(-1)
            if (r.data.more !== true || last === undefined) break
            after = [last.clock, last.origin, last.seq]
          }
          return { acked, refusal, channels, history, again, all }
        }),
      ).pipe(Effect.provide(layerZmq())),
    )
    console.log(`diskfull: ${outcome.acked.length} posts acknowledged before the disk was full; then: "${outcome.refusal}"`)
    expect(outcome.acked.length).toBeGreaterThan(50)
    expect(outcome.refusal).toMatch(/disk/)
    expect(outcome.channels.ok).toBe(true)
    expect(outcome.history.ok).toBe(true)
    expect(outcome.again.ok, outcome.again.error).toBe(true)
    // The server process lived through it.
    expect(server.child.exitCode).toBeNull()
    // Nothing acknowledged was lost, nothing is there twice.
    const stored = new Set(outcome.all)
    expect(outcome.acked.filter((i) => !stored.has(i))).toEqual([])
    expect(stored.size).toBe(outcome.all.length)
    expect(server.lines.some((l) => /not applied: this server (cannot write to its disk|'s disk is full)/.test(l))).toBe(true)
  }, 120_000)
})
