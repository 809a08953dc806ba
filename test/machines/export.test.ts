import { execFileSync } from "node:child_process"
import { resolve } from "node:path"
import { describe, expect, it } from "vitest"

/**
 * `bulletin/machines` is what someone embedding the machines imports: plain
 * JavaScript from package.json `exports`, no TypeScript loader. This runs a
 * bare Node process (no tsx) that imports it by package name and elects.
 */
describe("the bulletin/machines export", () => {
  it("imports in plain Node and runs an election", () => {
    const script = `
      import { bullyMachine, berkeleyAdjustments, SlewingClock, LamportClock, heartbeatMachine, berkeleyMachine, compareTerms } from "bulletin/machines"
      import { createActor } from "xstate"
      const out = []
      const a = createActor(bullyMachine, { input: { self: { name: "b", rank: 2 }, electionTimeoutMs: 5, coordinatorTimeoutMs: 5, announceIntervalMs: 10_000, startupTimeoutMs: 5 } })
      a.on("sendElection", (e) => out.push("election->" + e.to))
      a.on("announce", (e) => { out.push("announce " + e.term.epoch + "/" + e.term.rank); a.stop(); console.log(JSON.stringify({ out, exports: [typeof heartbeatMachine, typeof berkeleyMachine, typeof berkeleyAdjustments, typeof SlewingClock, typeof LamportClock, compareTerms({ epoch: 1, rank: 1 }, { epoch: 1, rank: 2 })] })) })
      a.start()
      a.send({ type: "PEERS", peers: [{ name: "a", rank: 1 }, { name: "c", rank: 3 }] })
    `
    const stdout = execFileSync(process.execPath, ["--input-type=module", "-e", script], { cwd: resolve(import.meta.dirname, "../.."), encoding: "utf8", timeout: 20_000 })
    const result = JSON.parse(stdout.trim()) as { out: Array<string>; exports: Array<unknown> }
    // c never answers: the election times out and b leads.
    expect(result.out).toEqual(["election->c", "announce 1/2"])
    expect(result.exports).toEqual(["object", "object", "function", "function", "function", -1])
  })
})
