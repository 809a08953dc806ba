import { readFileSync, readdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Proc, bin, spawnBulletin, stopAll, tempDir } from "../support/procs.ts"

/**
 * The operator tools against a cluster started by `bulletin up` (issue 16,
 * item 4): --version, `sub` (exact topics, --json, --count, a closed pipe),
 * `status`, `export` of a live server while posts are being made, `import`
 * into a fresh folder and a fresh server on it answering the same history.
 * Addresses: 127.81.32.x only.
 */
const host = "127.81.32.1"
const alone = "127.81.32.21"
const data = tempDir("tools")
let up: Proc

beforeAll(async () => {
  up = spawnBulletin("up", ["up", "--data", data, "--host", host, "--server-ip-base", "127.81.32.11", "--dashboard-port", "none", "--metrics-port", "none", "--bots", "0"])
  await Promise.all([1, 2, 3].map((i) => up.waitFor(new RegExp(`server-${i} +\\|.*serving requests`), 30_000)))
}, 40_000)
afterAll(stopAll)

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const jsonLines = (lines: ReadonlyArray<string>) => lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>)
const script = async (name: string, broker: string, user: string, commands: ReadonlyArray<string>) => {
  const c = spawnBulletin(name, ["client", "--json", "--broker", broker, "--proxy", broker, "--user", user, "--linger", "0", "--no-history"], { stdin: `${commands.join("\n")}\n` })
  const code = await c.exited
  const replies = jsonLines(c.lines).filter((o) => o.type === "reply")
  expect(code, c.lines.join("\n")).toBe(0)
  return replies
}

/** A first login with a password claims the name. */
const claim = async (user: string, password: string) => {
  const c = spawnBulletin(`claim-${user}`, ["client", "--json", "--broker", host, "--proxy", host, "--user", user, "--password", password, "--linger", "0", "--no-history"], { stdin: "" })
  expect(await c.exited, c.lines.join("\n")).toBe(0)
}

describe("operator tools against `bulletin up`", () => {
  it("--version says the package's version", async () => {
    const v = spawnBulletin("version", ["--version"])
    expect(await v.exited).toBe(0)
    const { version } = JSON.parse(readFileSync(join(import.meta.dirname, "../../package.json"), "utf8")) as { version: string }
    expect(v.lines).toEqual([`bulletin ${version}`])
  })

  it("sub tails exactly the topics asked (a channel, @user), as text or JSON, stops after --count and at a closed pipe", async () => {
    await Promise.all([script("setup", host, "ana", ["channel general", "channel other", "channel general-2"]), script("setup-2", host, "anabela", []), claim("carol", "pw")])
    const json = spawnBulletin("sub-json", ["sub", "general", "@ana", "--json", "--count", "4", "--seconds", "25", "--proxy", host])
    // A claimed name's messages go out sealed on its private topic: only a login with its password shows them.
    const sealed = spawnBulletin("sub-sealed", ["sub", "@carol", "--password", "pw", "--json", "--count", "1", "--seconds", "25", "--proxy", host, "--broker", host])
    const text = spawnBulletin("sub-text", ["sub", "general", "--count", "2", "--seconds", "25", "--proxy", host])
    // `| head -3`: the pipeline's status is sub's (pipefail); sub must exit 0, quietly, when head has gone.
    const piped = spawnBulletin("sub-pipe", [], {
      wrap: () => ["bash", "-c", `set -o pipefail; "${process.execPath}" "${bin}" sub general --seconds 25 --proxy ${host} | head -3`],
    })
    const interrupted = spawnBulletin("sub-ctrl-c", ["sub", "general", "--proxy", host])
    await Promise.all([json, text, piped, sealed, interrupted].map((s) => s.waitFor(/^sub: subscribed to/)))
    interrupted.child.kill("SIGINT")
    expect(sealed.lines.join("\n")).toMatch(/@carol \(and its sealed topic\)/)
    await sleep(1_000) // the subscriptions reach the servers through the proxy
    const posts = ["publish other not-for-general", "publish general-2 general-is-its-prefix", "message anabela ana-is-its-prefix", "message carol for-carol-only", "message ana p1", ...Array.from({ length: 8 }, (_, i) => `publish general g${i + 1}`)]
    await script("poster", host, "poster", posts)

    expect(await json.exited, json.lines.join("\n")).toBe(0)
    const got = jsonLines(json.lines)
    expect(got.length).toBe(4)
    expect(got.find((o) => o.type === "message")).toMatchObject({ type: "message", dst: "ana", src: "poster", message: "p1", sealed: false })
    for (const o of got.filter((x) => x.type === "publish")) {
      expect(o).toMatchObject({ channel: "general", user: "poster" })
      expect(String(o.message)).toMatch(/^g\d$/)
      expect(typeof o.timestamp === "number" && typeof o.time === "string" && typeof o.origin === "string" && typeof o.seq === "number").toBe(true)
    }

    expect(await interrupted.exited, "Ctrl-C: a clean exit").toBe(0)
    expect(interrupted.lines.join("\n")).not.toMatch(/Error|    at /)
    expect(await sealed.exited, sealed.lines.join("\n")).toBe(0)
    expect(jsonLines(sealed.lines)).toMatchObject([{ type: "message", dst: "carol", src: "poster", message: "for-carol-only", sealed: true }])
    expect(jsonLines(json.lines).some((o) => o.dst === "carol")).toBe(false)

    expect(await text.exited, text.lines.join("\n")).toBe(0)
    const shown = text.lines.filter((l) => !l.startsWith("sub:"))
    expect(shown.length).toBe(2)
    for (const l of shown) expect(l).toMatch(/^\[\d\d:\d\d:\d\d\] #general <poster> g\d$/)

    // Like any writer, sub learns that head has gone at its next write: one more post (at most a few).
    for (let i = 0; i < 100 && piped.lines.filter((l) => l.includes("#general")).length < 3; i++) await sleep(100)
    for (let i = 0; i < 5 && piped.child.exitCode === null; i++) await script(`poster-more-${i}`, host, "poster", ["publish general one-more"])
    expect(await piped.exited, piped.lines.join("\n")).toBe(0)
    const out = piped.lines.filter((l) => !l.startsWith("sub:"))
    expect(out.length, piped.lines.join("\n")).toBe(3)
    for (const l of out) expect(l).toMatch(/^\[\d\d:\d\d:\d\d\] #general <poster> g\d$/)
    expect(piped.lines.join("\n")).not.toMatch(/Error|EPIPE|    at /)
  }, 40_000)

  it("status answers: every server, all following one coordinator", async () => {
    let last = { code: -1 as number | null, out: "" }
    for (let i = 0; i < 20 && last.code !== 0; i++) {
      const s = spawnBulletin("status", ["status", "--reference", host, "--key", join(data, "cluster.key")])
      last = { code: await s.exited, out: s.lines.join("\n") }
      if (last.code !== 0) await sleep(500)
    }
    expect(last.code, last.out).toBe(0)
    expect(last.out).toMatch(/^SERVER +RANK/m)
    expect(last.out).toMatch(/3 servers, all following server-\d/)
  }, 20_000)

  it("export of a live server while posts are made, import into a fresh folder: a fresh server answers the same history", async () => {
    const work = tempDir("tools-export")
    const file = join(work, "server-1.jsonl")
    // The fresh server's own broker and proxy, started meanwhile.
    const broker = spawnBulletin("broker-9", ["broker", "--host", alone])
    const proxy = spawnBulletin("proxy-9", ["proxy", "--host", alone])
    const bot = spawnBulletin("bot", ["bot", "--broker", host, "--proxy", host, "--rate", "50", "--max", "150", "--alive-file", "none"])
    await bot.waitFor(/logged in/, 15_000)
    await sleep(700) // posting now
    const ex = spawnBulletin("export", ["export", "--data", join(data, "server-1"), "--out", file])
    expect(await ex.exited, ex.lines.join("\n")).toBe(0)
    expect(ex.lines.join("\n")).toMatch(/^export: \d+ ops of \d+ origins from server-1/m)
    expect(bot.child.exitCode, "the bot was still posting while the export ran").toBe(null)
    await bot.stop()

    const lines = readFileSync(file, "utf8").trimEnd().split("\n")
    const header = JSON.parse(lines[0]!) as { server: string; ops: number; format: number; schema: number; origins: Record<string, unknown> }
    expect(header).toMatchObject({ bulletin: "snapshot", format: 1, server: "server-1", schema: 1 })
    expect(lines.length).toBe(header.ops + 2)
    expect(JSON.parse(lines.at(-1)!)).toEqual({ end: { ops: header.ops } })
    const exported = new Set(lines.slice(1, -1).map((l) => (JSON.parse(l) as { op: { origin: string; seq: number } }).op).map((o) => `${o.origin}/${o.seq}`))

    // Refusals first: the exported server's own name, a corrupted line (nothing left behind), a folder in use.
    const restored = join(work, "server-9")
    const broken = join(work, "broken.jsonl")
    writeFileSync(broken, [...lines.slice(0, 2), '{"op":{"kind":"publish","user":"ana"', ...lines.slice(3)].join("\n") + "\n")
    const same = spawnBulletin("import-same", ["import", "--data", join(work, "not-made"), "--in", file, "--name", "server-1"])
    const bad = spawnBulletin("import-bad", ["import", "--data", join(work, "other"), "--in", broken, "--name", "server-9"])
    const busy = spawnBulletin("import-busy", ["import", "--data", join(data, "server-2"), "--in", file])
    const origin = spawnBulletin("import-origin", ["import", "--data", join(work, "not-made-2"), "--in", file, "--name", Object.keys(header.origins).find((o) => o !== "server-1") ?? "server-2"])
    const unnamed = spawnBulletin("import-unnamed", ["import", "--data", join(work, "not-made-3"), "--in", file])
    // From stdin, as `bulletin export --data A | bulletin import --data B` would.
    const im = spawnBulletin("import", ["import", "--data", restored, "--name", "server-9"], { stdin: readFileSync(file, "utf8") })
    expect(await same.exited).toBe(1)
    expect(same.lines.join("\n")).toMatch(/is the exported server itself/)
    expect(await bad.exited).toBe(1)
    expect(bad.lines.join("\n")).toMatch(/^bulletin import: line 3: not JSON .*; nothing written$/m)
    expect(await busy.exited).toBe(1)
    expect(busy.lines.join("\n")).toMatch(/server-2 is not empty/)
    expect(await origin.exited).toBe(1)
    expect(origin.lines.join("\n")).toMatch(/the snapshot holds ops of server-\d as an origin/)
    expect(await unnamed.exited).toBe(1)
    expect(unnamed.lines.join("\n")).toMatch(/import needs --name NAME/)
    expect(await im.exited, im.lines.join("\n")).toBe(0)
    expect(im.lines.join("\n")).toMatch(new RegExp(`^import: ${header.ops} ops of \\d+ origins \\(a snapshot of server-1`, "m"))
    expect(readdirSync(work).sort(), "nothing half-written left behind").toEqual(["broken.jsonl", "server-1.jsonl", "server-9"])

    const questions = ["history general 500", "history @ana 500"]
    type Post = { origin: string; seq: number; clock: number; user?: string; src?: string; message: string; timestamp: number }
    const ask = async (name: string, at: string) =>
      (await script(name, at, "poster", questions)).slice(1).map((r) => ((r.data as { messages: Array<Post> }).messages ?? []).map((p) => ({ origin: p.origin, seq: p.seq, clock: p.clock, who: p.user ?? p.src, message: p.message, timestamp: p.timestamp })))

    const again = spawnBulletin("import-again", ["import", "--data", restored, "--in", file])

    // A fresh server, alone with its own broker and proxy: what it serves comes from the restored folder only.
    await Promise.all([broker.waitFor(/broker: tcp/), proxy.waitFor(/proxy: tcp/)])
    const server9 = spawnBulletin("server-9", ["server", "--name", "server-9", "--data", restored, "--broker", alone, "--proxy", alone, "--reference", "none", "--host", "127.81.32.29", "--metrics-port", "none"])
    const liveAnswers = ask("history-live", host)
    await server9.waitFor(/serving requests/, 15_000)
    expect(server9.lines.join("\n")).toMatch(new RegExp(`${header.ops} ops on disk`))
    expect(await again.exited).toBe(1)
    expect(again.lines.join("\n")).toMatch(/is not empty .*import only into an empty or new folder/)

    const live = await liveAnswers
    const fromBackup = await ask("history-restored", alone)
    expect(fromBackup[0]!.length, "the posts to #general made before the export").toBeGreaterThanOrEqual(8)
    expect(fromBackup[1]!.map((p) => p.message)).toEqual(["p1"])
    for (const [i, page] of fromBackup.entries()) {
      // The live cluster's answer, as of the snapshot (its ops that the export holds), is the restored server's answer.
      expect(page, questions[i]).toEqual(live[i]!.filter((p) => exported.has(`${p.origin}/${p.seq}`)))
      for (const p of page) expect(exported.has(`${p.origin}/${p.seq}`)).toBe(true)
    }
  }, 45_000)
})
