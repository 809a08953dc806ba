import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { plainError, promptOf, newState } from "../../src/cli/client.ts"
import { LineEditor, Screen, appendHistory, cleanInput, commonPrefix, complete, graphemeWidth, historyPath, layout, loadHistory, redact, rowsFor, stringWidth, withLine } from "../../src/cli/terminal.ts"

const dir = mkdtempSync(join(tmpdir(), "bulletin-terminal-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe("widths and wrapping", () => {
  it("counts columns: wide characters two, accents none", () => {
    expect(stringWidth("abc")).toBe(3)
    expect(stringWidth("漢字")).toBe(4)
    expect(stringWidth("e\u0301")).toBe(1)
    expect(graphemeWidth("🎉")).toBe(2)
    expect(stringWidth("")).toBe(0)
  })

  it("counts the rows of a line wider than the terminal", () => {
    const prompt = "#general> " // 10 columns
    expect(rowsFor(prompt + "x".repeat(110), 120)).toBe(1 + 1) // exactly 120: the cursor is on the next row
    expect(rowsFor(prompt + "x".repeat(109), 120)).toBe(1)
    expect(rowsFor(prompt + "x".repeat(200), 120)).toBe(2)
    expect(rowsFor(prompt + "x".repeat(200), 60)).toBe(4)
    expect(rowsFor("", 80)).toBe(1)
  })

  it("moves a wide character that does not fit at a row's end to the next row", () => {
    const l = layout([1, 1, 1, 2], 4)
    expect(l.starts).toEqual([
      { row: 0, col: 0 },
      { row: 0, col: 1 },
      { row: 0, col: 2 },
      { row: 1, col: 0 },
    ])
    expect(l.end).toEqual({ row: 1, col: 2 })
    expect(layout([2, 2], 4).end).toEqual({ row: 1, col: 0 })
  })

  it("drops control characters from typed or pasted text", () => {
    expect(cleanInput("a\x1b[31mb\tc\u202ed")).toBe("a[31mb cd")
  })
})

describe("the screen", () => {
  it("goes back to the first row of a wrapped input before printing above it, and paints the screen again on a resize", () => {
    let written = ""
    let cols = 120
    const screen = new Screen((s) => (written += s), () => cols, () => 5)
    const text = [..."y".repeat(200)]
    screen.render({ prompt: "#general> ", text, cursor: text.length })
    written = ""
    screen.print("a post")
    // The cursor was on the input's second row: up one, clear to the end of the screen, the post, the input again.
    expect(written.startsWith("\x1b[1A\r\x1b[J" + "a post\r\n#general> ")).toBe(true)
    screen.print("another post")
    written = ""
    cols = 60 // 4 rows of input: room for one line of output above it, on a screen painted again
    screen.resize()
    expect(written.startsWith("\x1b[1;1H\x1b[2K\x1b[2;1H\x1b[2K")).toBe(true)
    expect(written).toContain("\x1b[5;1H\x1b[2K\x1b[Hanother post\r\n#general> " + "y".repeat(50))
    written = ""
    screen.print("more")
    expect(written.startsWith("\x1b[3A\r\x1b[Jmore\r\n")).toBe(true)
  })
})

describe("completion", () => {
  const words = { commands: ["join", "help", "history", "message", "msg", "publish"], channels: ["general", "games", "random"], users: ["ana", "andre", "bob"] }
  it("completes commands, channels and users", () => {
    expect(complete("/jo", words).candidates).toEqual(["/join"])
    expect(complete("hi", words).candidates).toEqual(["history"])
    expect(complete("/join gen", words)).toEqual({ start: 6, candidates: ["general"] })
    expect(complete("/join g", words).candidates).toEqual(["games", "general"])
    expect(complete("message an", words).candidates).toEqual(["ana", "andre"])
    expect(complete("hello @bo", words, true)).toEqual({ start: 6, candidates: ["@bob"] })
    expect(complete("see #ra", words, true).candidates).toEqual(["#random"])
    // A post's first word is a name, not a command.
    expect(complete("bo", words, true).candidates).toEqual(["bob"])
    expect(commonPrefix(["ana", "andre"])).toBe("an")
    expect(commonPrefix(["Games", "general"])).toBe("G")
  })
})

describe("history", () => {
  it("never keeps a password, and no blank or repeated line", () => {
    expect(redact("login ana s3cret")).toBe("login ana")
    expect(redact("/login ana s3cret")).toBe("/login ana")
    expect(redact("login ana")).toBe("login ana")
    expect(withLine(["a"], "a")).toEqual(["a"])
    expect(withLine(["a"], "  ")).toEqual(["a"])
    expect(withLine(["a", "b", "c"], "d", 3)).toEqual(["b", "c", "d"])
  })

  it("finds its file from the environment", () => {
    expect(historyPath({ BULLETIN_HISTORY_FILE: "" })).toBeUndefined()
    expect(historyPath({ BULLETIN_HISTORY_FILE: "/x/h" })).toBe("/x/h")
    expect(historyPath({ XDG_STATE_HOME: "/s" }, undefined, "/home/u")).toBe("/s/bulletin/history")
    expect(historyPath({}, undefined, "/home/u")).toBe("/home/u/.local/state/bulletin/history")
  })

  it("is a bounded file of mode 0600 that keeps what other sessions added", () => {
    const file = join(dir, "state", "bulletin", "history")
    for (let i = 0; i < 30; i++) appendHistory(file, `line ${i}`, 20)
    appendHistory(file, "login ana s3cret", 20)
    writeFileSync(file, readFileSync(file, "utf8") + "from another session\n")
    const lines = appendHistory(file, "last", 20)!
    expect(lines).toHaveLength(20)
    expect(lines.slice(-3)).toEqual(["login ana", "from another session", "last"])
    expect(loadHistory(file, 20)).toEqual(lines)
    expect(readFileSync(file, "utf8")).not.toContain("s3cret")
    expect(statSync(file).mode & 0o777).toBe(0o600)
  })
})

describe("the line editor", () => {
  const type = (e: LineEditor, s: string) => {
    for (const ch of s) e.key(ch, { name: ch })
  }
  it("walks the history with Up and Down, keeping the line being typed", () => {
    const e = new LineEditor(["first", "second"])
    type(e, "draft")
    e.key(undefined, { name: "up" })
    expect(e.line).toBe("second")
    e.key(undefined, { name: "up" })
    e.key(undefined, { name: "up" })
    expect(e.line).toBe("first")
    e.key(undefined, { name: "down" })
    e.key(undefined, { name: "down" })
    expect(e.line).toBe("draft")
  })

  it("searches back with Ctrl-R", () => {
    const e = new LineEditor(["join general", "hello", "join random", "bye"])
    e.key("\x12", { name: "r", ctrl: true })
    type(e, "join")
    expect(e.view("> ").prompt).toBe("(reverse-i-search)'join': ")
    expect(e.view("> ").text.join("")).toBe("join random")
    e.key("\x12", { name: "r", ctrl: true })
    expect(e.view("> ").text.join("")).toBe("join general")
    expect(e.key("\r", { name: "return" })).toEqual({ type: "submit", line: "join general" })
  })

  it("clears the line on Ctrl-C, and quits on Ctrl-C or Ctrl-D only when it is empty", () => {
    const e = new LineEditor()
    type(e, "abc")
    expect(e.key("\x03", { name: "c", ctrl: true }).type).toBe("none")
    expect(e.line).toBe("")
    expect(e.key("\x03", { name: "c", ctrl: true }).type).toBe("interrupt")
    expect(e.key("\x04", { name: "d", ctrl: true }).type).toBe("eof")
  })

  it("edits in the middle, by characters (not UTF-16 units)", () => {
    const e = new LineEditor()
    type(e, "a漢🎉b")
    e.key(undefined, { name: "left" })
    e.key(undefined, { name: "backspace" })
    expect(e.line).toBe("a漢b")
    e.key("\x17", { name: "w", ctrl: true })
    expect(e.line).toBe("b")
  })
})

describe("the client's words", () => {
  it("says no such channel in the same words everywhere, and shows the current channel", () => {
    expect(plainError("channel 'x' does not exist")).toBe("no such channel 'x'")
    expect(plainError("user 'bob' does not exist")).toBe("no such user 'bob'")
    expect(plainError("invalid login request: user: name must not be empty")).toBe("name must not be empty")
    const s = newState()
    expect(promptOf(s)).toBe("bulletin> ")
    s.current = { kind: "channel", name: "general" }
    expect(promptOf(s)).toBe("#general> ")
  })
})
