/**
 * `bulletin client` in a real terminal: a detached tmux session of a fixed
 * size (its own server socket, killed at the end), driven with send-keys and
 * read back with capture-pane.
 */
import { execFileSync } from "node:child_process"
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { bin, spawnBulletin, startCluster, stopAll, tempDir } from "../support/procs.ts"

const host = "127.81.30.1"
const socket = `bulletin-pty-${process.pid}`
const hasTmux = (() => {
  try {
    execFileSync("tmux", ["-V"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()

// Our own server (-L), even when the tests run inside someone's tmux.
const tmuxEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== "TMUX" && k !== "TMUX_PANE"))
const tmux = (...args: Array<string>) => execFileSync("tmux", ["-L", socket, "-f", "/dev/null", ...args], { encoding: "utf8", env: tmuxEnv })
const keys = (session: string, ...k: Array<string>) => void tmux("send-keys", "-t", session, ...k)
const type = (session: string, text: string) => void tmux("send-keys", "-t", session, "-l", text)

/** The pane's text, lines without trailing blanks, trailing empty lines dropped; `joined`: wrapped rows as one line. */
const screen = (session: string, joined = false) => {
  const lines = tmux("capture-pane", "-p", ...(joined ? ["-J"] : []), "-t", session).split("\n").map((l) => l.trimEnd())
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop()
  return lines
}

/** Polls the screen until `ok` holds; fails with what is on the screen. */
const waitScreen = async (session: string, what: string, ok: (text: string, lines: Array<string>) => boolean, options: { timeoutMs?: number; joined?: boolean } = {}) => {
  const deadline = performance.now() + (options.timeoutMs ?? 8_000)
  for (;;) {
    const lines = screen(session, options.joined)
    const text = lines.join("\n")
    if (ok(text, lines)) return lines
    if (performance.now() > deadline) throw new Error(`${what}: not on the screen within ${options.timeoutMs ?? 8_000} ms; the screen:\n${text}`)
    await new Promise((r) => setTimeout(r, 80))
  }
}

const lastLine = (lines: ReadonlyArray<string>) => lines[lines.length - 1] ?? ""
const count = (text: string, part: string) => text.split(part).length - 1

let dir = ""
let historyFile = ""

/** A client in its own tmux session, started from a shell script that reports how it left the terminal. */
const startClient = (session: string, user: string) => {
  const script = join(dir, `${session}.sh`)
  writeFileSync(
    script,
    [
      "before=$(stty -g)",
      `${JSON.stringify(process.execPath)} ${JSON.stringify(bin)} client --broker ${host} --proxy ${host} --user ${user}`,
      "code=$?",
      '[ "$(stty -g)" = "$before" ] && tty=restored || tty=changed',
      'printf "[client exited %s, tty %s]\\n" "$code" "$tty"',
      // Bracketed paste must be off again: pasted text then reaches the shell without \e[200~ around it.
      "IFS= read -r line",
      'printf "GOT:%s\\n" "$line" | cat -v',
      "exec sleep 60",
      "",
    ].join("\n"),
  )
  const env = [`BULLETIN_CLUSTER_KEY=${process.env.BULLETIN_CLUSTER_KEY}`, `BULLETIN_HISTORY_FILE=${historyFile}`]
  tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "30", ...env.flatMap((e) => ["-e", e]), `sh ${script}`)
}

describe.skipIf(!hasTmux)("bulletin client in a terminal (tmux)", () => {
  beforeAll(async () => {
    dir = tempDir("pty")
    historyFile = join(dir, "state", "history")
    await startCluster(host, 1)
    const setup = spawnBulletin("setup", ["client", "--broker", host, "--proxy", host, "--user", "bobby"], { stdin: "channel general\nchannel games\nchannel random\n" })
    expect(await setup.exited).toBe(0)
  }, 30_000)

  afterAll(async () => {
    try {
      tmux("kill-server")
    } catch {
      // no server: nothing to kill
    }
    // tmux leaves its socket file behind.
    rmSync(join(process.env.TMUX_TMPDIR ?? "/tmp", `tmux-${process.getuid?.() ?? 0}`, socket), { force: true })
    await stopAll()
  })

  it("from a script: one word for an unknown channel, exit status 1, and quiet on a closed pipe", async () => {
    const script = spawnBulletin("script", ["client", "--json", "--broker", host, "--proxy", host, "--user", "scripted"], { stdin: "channels\npublish nosuch hi\nhistory nosuch\nhistory general 1\n" })
    expect(await script.exited).toBe(1)
    const replies = script.lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { type: string; command: string; ok: boolean; error?: string })
    expect(replies.filter((r) => r.type === "reply").map((r) => [r.command, r.ok, r.error])).toEqual([
      ["login", true, undefined],
      ["channels", true, undefined],
      ["publish", false, "no such channel 'nosuch'"],
      ["history", false, "no such channel 'nosuch'"],
      ["history", true, undefined],
    ])
    const pipeline = `printf 'channels\\n%.0s' $(seq 300) | ${JSON.stringify(process.execPath)} ${JSON.stringify(bin)} client --broker ${host} --proxy ${host} 2>&1 | head -1; echo "status $\{PIPESTATUS[1]}"`
    const out = execFileSync("bash", ["-c", pipeline], { encoding: "utf8", timeout: 20_000 })
    expect(out).toMatch(/^channels \(3\)/)
    expect(out).toMatch(/status 0/)
    expect(out).not.toMatch(/EPIPE|Error/)
  }, 25_000)

  it("completes commands, channels and users with Tab; Ctrl-C clears the line and does not quit", async () => {
    startClient("one", "ana")
    await waitScreen("one", "the prompt", (t, l) => t.includes("connected to") && lastLine(l) === "bulletin>")
    type("one", "/jo")
    keys("one", "Tab")
    await waitScreen("one", "/jo completed", (_, l) => lastLine(l) === "bulletin> /join")
    type("one", "gen")
    keys("one", "Tab")
    await waitScreen("one", "the channel completed", (_, l) => lastLine(l) === "bulletin> /join general")
    keys("one", "C-c")
    await waitScreen("one", "the line cleared", (_, l) => lastLine(l) === "bulletin>")
    type("one", "/msg bo")
    keys("one", "Tab")
    await waitScreen("one", "the user completed", (_, l) => lastLine(l) === "bulletin> /msg bobby")
    keys("one", "C-u")
    // Still running: it answers a command.
    type("one", "/list")
    keys("one", "Enter")
    await waitScreen("one", "the channel list", (t) => t.includes("channels (3): games, general, random"))
  }, 20_000)

  it("joins a channel, then plain text posts there; /msg, /me, /names, /part; Ctrl-D leaves a clean line", async () => {
    type("one", "/login carol s3cret")
    keys("one", "Enter")
    await waitScreen("one", "the login with a password", (t) => t.includes("logged in as carol (with a password"))
    for (const line of ["/login ana", "/join nosuch"]) {
      type("one", line)
      keys("one", "Enter")
    }
    await waitScreen("one", "the refused join", (t) => t.includes("error: no such channel 'nosuch' (join -c nosuch creates it)"))
    type("one", "/join general")
    keys("one", "Enter")
    await waitScreen("one", "the channel prompt", (t, l) => t.includes("now talking in #general") && lastLine(l) === "#general>")
    type("one", "hello from ana @bo")
    keys("one", "Tab")
    await waitScreen("one", "@user completed", (_, l) => lastLine(l) === "#general> hello from ana @bobby")
    keys("one", "Enter")
    await waitScreen("one", "the post back from the channel", (t) => /#general <ana> hello from ana @bobby$/m.test(t))
    for (const line of ["/me waves", "/msg ana note to self", "/names", "/history nosuch"]) {
      type("one", line)
      keys("one", "Enter")
    }
    await waitScreen("one", "/me, /msg, /names, /history", (t) => /#general \* ana waves$/m.test(t) && /\(private\) <ana> note to self$/m.test(t) && /users \(\d+\): .*ana/.test(t) && t.includes("error: no such channel 'nosuch'"))
    type("one", "/part")
    keys("one", "Enter")
    await waitScreen("one", "/part", (t, l) => t.includes("left #general") && lastLine(l) === "bulletin>")
    // The post went once to the channel, the typed commands are echoed once each.
    const text = screen("one").join("\n")
    expect(count(text, "<ana> hello from ana")).toBe(1)
    expect(count(text, "#general> /me waves")).toBe(1)

    keys("one", "C-d")
    const after = await waitScreen("one", "the shell after Ctrl-D", (t) => t.includes("[client exited"))
    const i = after.findIndex((l) => l.startsWith("[client exited"))
    expect(after[i], "exit status 0, the terminal as it was").toBe("[client exited 0, tty restored]")
    expect(after[i - 1], "the last prompt stays on its own line").toBe("bulletin>")
    tmux("set-buffer", "-b", "probe", "probe\n")
    tmux("paste-buffer", "-p", "-b", "probe", "-t", "one")
    await waitScreen("one", "bracketed paste off after exit", (t) => t.includes("GOT:"))
    expect(screen("one").join("\n")).toContain("GOT:probe")
    expect(screen("one").join("\n")).not.toContain("200~")

    // The history file: mode 0600, no password.
    expect(statSync(historyFile).mode & 0o777).toBe(0o600)
    const saved = readFileSync(historyFile, "utf8")
    expect(saved).toContain("/login carol\n")
    expect(saved).not.toContain("s3cret")
    expect(saved.trimEnd().split("\n").at(-1)).toBe("/part")
  }, 25_000)

  it("recalls the previous run's lines with Up, and older ones with Ctrl-R", async () => {
    startClient("two", "ana")
    await waitScreen("two", "the prompt", (_, l) => lastLine(l) === "bulletin>")
    keys("two", "Up")
    await waitScreen("two", "the last line of the previous run", (_, l) => lastLine(l) === "bulletin> /part")
    keys("two", "C-u", "C-r")
    type("two", "hello")
    await waitScreen("two", "the search", (_, l) => lastLine(l) === "(reverse-i-search)'hello': hello from ana @bobby")
    keys("two", "C-g")
    await waitScreen("two", "the search cancelled", (_, l) => lastLine(l) === "bulletin>")
    type("two", "/join general")
    keys("two", "Enter")
    await waitScreen("two", "joined", (_, l) => lastLine(l) === "#general>")
  }, 15_000)

  const longLine = Array.from({ length: 40 }, (_, i) => `w${String(i).padStart(3, "0")}`).join(" ") // 199 characters

  it("keeps a line wider than the terminal intact, once, at the bottom, while 12 posts arrive above it", async () => {
    keys("two", "C-l")
    await waitScreen("two", "a clear screen", (_, l) => l.length === 1)
    type("two", longLine.slice(0, 130)) // with the prompt: two rows already
    await waitScreen("two", "the first part typed", (t) => t.includes(longLine.slice(110, 129)), { joined: true }) // (the screen has no trailing blank)
    const posts = Array.from({ length: 12 }, (_, i) => `post-${String(i + 1).padStart(2, "0")} from the poster`)
    const poster = spawnBulletin("poster", ["client", "--broker", host, "--proxy", host, "--user", "poster"], { stdin: posts.map((p) => `publish general ${p}\nsleep 120\n`).join("") })
    const midway = (await waitScreen("two", "the first posts", (t) => t.includes("post-05"))).join("\n")
    type("two", longLine.slice(130)) // typing goes on while posts arrive
    const lines = await waitScreen("two", "all 12 posts", (t) => t.includes("post-12") && t.includes(longLine), { joined: true })
    expect(await poster.exited).toBe(0)
    const capture = process.env.BULLETIN_SCREEN_CAPTURE
    if (capture !== undefined && capture !== "")
      writeFileSync(capture, `--- 120x30, typing (130 of 199 characters), posts arriving:\n${midway}\n--- all 12 posts in, the line still being typed (not sent yet):\n${screen("two").join("\n")}\n`)

    const joined = lines.join("\n")
    for (const p of posts) expect(count(joined, p), `${p} once`).toBe(1)
    expect(count(joined, longLine), "the typed line once").toBe(1)
    expect(lastLine(lines), "the typed line at the bottom, intact").toBe(`#general> ${longLine}`)
    // Row by row too: no stray copy of a part of it (the bug was copies of its last row).
    const rows = screen("two")
    const full = `#general> ${longLine}`
    expect(rows.slice(-2)).toEqual([full.slice(0, 120).trimEnd(), full.slice(120)])
    expect(count(rows.join("\n"), longLine.slice(0, 40))).toBe(1)
    expect(count(rows.join("\n"), longLine.slice(-30))).toBe(1)

    keys("two", "Enter")
    const back = await waitScreen("two", "the long post back", (t, l) => t.includes(`<ana> ${longLine}`) && lastLine(l) === "#general>", { joined: true })
    expect(count(back.join("\n"), longLine)).toBe(1)
  }, 20_000)

  it("redraws the typed line when the terminal is resized", async () => {
    const typed = longLine.slice(0, 149) // (ends in a word: the screen has no trailing blank)
    type("two", typed)
    await waitScreen("two", "the line typed", (_, l) => lastLine(l) === `#general> ${typed}`, { joined: true })
    const full = `#general> ${typed}`
    const rowsAt = (cols: number) => Array.from({ length: Math.ceil(full.length / cols) }, (_, i) => full.slice(i * cols, (i + 1) * cols).trimEnd())
    for (const cols of [60, 97, 120]) {
      tmux("resize-window", "-t", "two", "-x", String(cols))
      // Until the client has painted the screen again (the terminal's own rewrap comes first, and leaves stray rows).
      const painted = (l: Array<string>) =>
        l.slice(-rowsAt(cols).length).join("\n") === rowsAt(cols).join("\n") &&
        rowsAt(cols).every((row) => l.filter((x) => x === row).length === 1) &&
        l.filter((x) => x.endsWith("<poster> post-12 from the poster")).length === 1
      const lines = await waitScreen("two", `the line at ${cols} columns, each row once, the last post above it once`, (_, l) => painted(l))
      expect(painted(lines)).toBe(true)
    }
    keys("two", "C-u")
    await waitScreen("two", "the line cleared", (_, l) => lastLine(l) === "#general>")

    // Wide characters take two columns: 55 of them fill the first row after the prompt.
    const wide = "漢字".repeat(40)
    type("two", `${wide} @`)
    keys("two", "Tab") // several users: the candidates are printed above the line
    const rows = [`#general> ${wide.slice(0, 55)}`, `${wide.slice(55)} @`]
    const shown = await waitScreen("two", "the wide line under the candidates", (t, l) => t.includes("@scripted") && l.slice(-2).join("\n") === rows.join("\n"))
    for (const row of rows) expect(shown.filter((l) => l === row)).toHaveLength(1)
    keys("two", "C-u")
    await waitScreen("two", "the line cleared", (_, l) => lastLine(l) === "#general>")
  }, 15_000)

  it("inserts a pasted line as typed, and asks before sending a pasted block", async () => {
    tmux("set-buffer", "-b", "one-line", "pasted words")
    tmux("paste-buffer", "-p", "-b", "one-line", "-t", "two")
    await waitScreen("two", "the pasted line in the input", (_, l) => lastLine(l) === "#general> pasted words")
    keys("two", "C-u")
    tmux("set-buffer", "-b", "block", "block one\nblock two\nblock three\n")
    tmux("paste-buffer", "-p", "-b", "block", "-t", "two")
    await waitScreen("two", "the question", (_, l) => lastLine(l).startsWith("paste 3 lines? y: send them as 3 lines, j: join them into one line, n: drop them"))
    keys("two", "y")
    await waitScreen("two", "3 posts", (t, l) => ["one", "two", "three"].every((w) => new RegExp(`<ana> block ${w}$`, "m").test(t)) && lastLine(l) === "#general>")
    tmux("paste-buffer", "-p", "-b", "block", "-t", "two")
    await waitScreen("two", "the question again", (_, l) => lastLine(l).startsWith("paste 3 lines?"))
    keys("two", "j")
    await waitScreen("two", "the block joined into the input", (_, l) => lastLine(l) === "#general> block one block two block three")
    keys("two", "C-u")
    type("two", "/quit")
    keys("two", "Enter")
    const after = await waitScreen("two", "the shell after /quit", (t) => t.includes("[client exited"))
    expect(after.find((l) => l.startsWith("[client exited"))).toBe("[client exited 0, tty restored]")
    expect(existsSync(historyFile)).toBe(true)
  }, 15_000)
})
