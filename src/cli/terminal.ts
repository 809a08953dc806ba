/**
 * The interactive client's line editor: pure parts (widths, layout with
 * wrapping, completion, the history file) and a small editor driven by
 * keypress events, which knows exactly how many rows the prompt and the
 * typed line take, so output printed above it never leaves copies behind.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import { homedir } from "node:os"
import { dirname, join } from "node:path"

const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" })

/** User-perceived characters (a letter and its accents, an emoji sequence): what the cursor moves over. */
export const graphemes = (s: string): Array<string> => Array.from(segmenter.segment(s), (g) => g.segment)

// eslint-disable-next-line no-control-regex
const controls = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g

/** Text for the input line: tabs become spaces, other control characters (escape sequences, bidi overrides) are dropped. */
export const cleanInput = (s: string): string => s.replace(/\t/g, " ").replace(controls, "")

const zeroWidth = /^[\p{Mn}\p{Me}\p{Cf}]$/u
const pictographic = /^\p{Extended_Pictographic}$/u

/** Columns one code point takes in a terminal (wcwidth, in short). */
export const codePointWidth = (cp: number): number => {
  if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return 0
  const ch = String.fromCodePoint(cp)
  if (zeroWidth.test(ch) || (cp >= 0x1160 && cp <= 0x11ff)) return 0
  if (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0xa4cf && cp !== 0x303f) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1f64f) ||
    (cp >= 0x1f900 && cp <= 0x1f9ff) ||
    (cp >= 0x20000 && cp <= 0x3fffd) ||
    (cp >= 0x1f000 && pictographic.test(ch))
  )
    return 2
  return 1
}

/** Columns one grapheme takes: its first code point's width (what follows it combines with it). */
export const graphemeWidth = (g: string): number => {
  const first = g.codePointAt(0)
  if (first === undefined) return 0
  const w = codePointWidth(first)
  // An emoji in text presentation made emoji by U+FE0F takes two columns.
  return w === 1 && g.includes("\ufe0f") && pictographic.test(String.fromCodePoint(first)) ? 2 : w
}

export const stringWidth = (s: string): number => graphemes(s).reduce((n, g) => n + graphemeWidth(g), 0)

export interface Position {
  readonly row: number
  readonly col: number
}

/**
 * Where each grapheme starts when `widths` are written from column 0 of a
 * terminal `cols` wide, and where the cursor ends. A wide character that does
 * not fit at a row's end goes to the next row (as terminals do); text that
 * ends exactly at the last column ends at column 0 of the next row (the
 * renderer writes "\r\n" there, so the terminal agrees).
 */
export const layout = (widths: ReadonlyArray<number>, cols: number): { readonly starts: Array<Position>; readonly end: Position; readonly rows: number } => {
  const width = Math.max(1, cols)
  let row = 0
  let col = 0
  const starts: Array<Position> = []
  for (const w of widths) {
    if (col >= width || (w > 0 && col + w > width)) {
      row += 1
      col = 0
    }
    starts.push({ row, col })
    col += Math.min(w, width)
  }
  const end = col >= width ? { row: row + 1, col: 0 } : { row, col }
  return { starts, end, rows: end.row + 1 }
}

/** Rows the prompt and the typed text take at `cols` columns (e.g. 200 characters after a 10-character prompt at 120 columns: 2). */
export const rowsFor = (text: string, cols: number) => layout(graphemes(text).map(graphemeWidth), cols).rows

// ---------------------------------------------------------------- completion

export interface Words {
  readonly commands: ReadonlyArray<string>
  readonly channels: ReadonlyArray<string>
  readonly users: ReadonlyArray<string>
}

const channelArg = new Set(["join", "part", "subscribe", "unsubscribe", "publish", "channel", "history", "list"])
const userArg = new Set(["message", "msg", "query", "login", "names"])

const startingWith = (token: string, names: ReadonlyArray<string>, prefix = "") => {
  const t = token.toLowerCase()
  return [...new Set(names)].map((n) => prefix + n).filter((n) => n.toLowerCase().startsWith(t)).sort()
}

/**
 * What the word before the cursor may become: commands as the first word
 * (`/jo` -> `/join`; bare words too while plain text is not a post), channel
 * names after a command that takes one (`/join gen` -> `/join general`) or
 * after `#`, user names after `message`/`msg`/`query` or after `@`, and user
 * names for any other word of a post (nick completion).
 */
export const complete = (before: string, words: Words, plainIsText = false): { readonly start: number; readonly candidates: Array<string> } => {
  const token = /\S*$/.exec(before)![0]
  const start = before.length - token.length
  const earlier = before.slice(0, start).trim().split(/\s+/).filter((w) => w !== "")
  const candidates = (() => {
    if (token.startsWith("@")) return startingWith(token, words.users, "@")
    if (token.startsWith("#")) return startingWith(token, words.channels, "#")
    if (earlier.length === 0) {
      if (token.startsWith("/")) return startingWith(token, words.commands, "/")
      return plainIsText ? startingWith(token, words.users) : startingWith(token, words.commands)
    }
    const command = earlier[0]!.startsWith("/") || !plainIsText ? earlier[0]!.replace(/^\//, "") : undefined
    if (command !== undefined && earlier.length === 1) {
      if (command === "join" && token.startsWith("-")) return []
      if (channelArg.has(command)) return startingWith(token, words.channels)
      if (userArg.has(command)) return startingWith(token, words.users)
    }
    if (command === "join" && earlier.length === 2 && earlier[1] === "-c") return []
    return token === "" ? [] : startingWith(token, words.users)
  })()
  return { start, candidates }
}

/** The longest prefix all `names` share (case-insensitively), spelled as the first of them. */
export const commonPrefix = (names: ReadonlyArray<string>): string => {
  if (names.length === 0) return ""
  let n = names[0]!.length
  for (const s of names) {
    let i = 0
    while (i < n && i < s.length && s[i]!.toLowerCase() === names[0]![i]!.toLowerCase()) i++
    n = i
  }
  return names[0]!.slice(0, n)
}

// ------------------------------------------------------------------- history

export const historyMax = 1_000

/**
 * The history file: BULLETIN_HISTORY_FILE (empty: none), else
 * $XDG_STATE_HOME/bulletin/history, else ~/.local/state/bulletin/history.
 */
export const historyPath = (env: NodeJS.ProcessEnv, given: string | undefined = env.BULLETIN_HISTORY_FILE, home = homedir()): string | undefined => {
  if (given !== undefined) return given === "" ? undefined : given
  const state = env.XDG_STATE_HOME !== undefined && env.XDG_STATE_HOME !== "" ? env.XDG_STATE_HOME : join(home, ".local", "state")
  return join(state, "bulletin", "history")
}

/** A line as history keeps it: never a password (`login NAME PASSWORD` is kept as `login NAME`). */
export const redact = (line: string): string => line.replace(/^(\s*\/?login\s+\S+)\s+\S.*$/i, "$1")

/** `history` with `line` added (not blank lines, not the same line twice in a row), the newest `max` kept. */
export const withLine = (history: ReadonlyArray<string>, line: string, max = historyMax): Array<string> => {
  const kept = redact(line).trimEnd()
  if (kept.trim() === "" || history[history.length - 1] === kept) return history.slice(-max)
  return [...history, kept].slice(-max)
}

export const loadHistory = (file: string | undefined, max = historyMax): Array<string> => {
  if (file === undefined) return []
  try {
    return readFileSync(file, "utf8").split("\n").filter((l) => l.trim() !== "").map(cleanInput).slice(-max)
  } catch {
    return []
  }
}

/**
 * Adds a line to the file (what other sessions wrote meanwhile is kept):
 * written whole to a temporary file and renamed, mode 0600 (the folder 0700).
 * Returns the file's lines; a file that cannot be written is no error.
 */
export const appendHistory = (file: string | undefined, line: string, max = historyMax): Array<string> | undefined => {
  if (file === undefined) return undefined
  const lines = withLine(loadHistory(file, max), line, max)
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
    const tmp = `${file}.${process.pid}.tmp`
    writeFileSync(tmp, lines.length === 0 ? "" : `${lines.join("\n")}\n`, { mode: 0o600 })
    chmodSync(tmp, 0o600)
    renameSync(tmp, file)
  } catch {
    return undefined
  }
  return lines
}

// -------------------------------------------------------------------- editor

export interface Key {
  readonly name?: string | undefined
  readonly ctrl?: boolean | undefined
  readonly meta?: boolean | undefined
  readonly shift?: boolean | undefined
  readonly sequence?: string | undefined
}

export type EditorAction =
  | { readonly type: "none" }
  | { readonly type: "submit"; readonly line: string }
  | { readonly type: "interrupt" } // Ctrl-C on an empty line
  | { readonly type: "eof" } // Ctrl-D on an empty line
  | { readonly type: "complete" }
  | { readonly type: "clear-screen" }

const none: EditorAction = { type: "none" }

/** The state of the input line: text, cursor, history browsing, Ctrl-R search. */
export class LineEditor {
  text: Array<string> = []
  cursor = 0
  history: Array<string>
  private index: number
  private draft: Array<string> = []
  search: { query: string; match: number; saved: { text: Array<string>; cursor: number } } | undefined

  constructor(history: ReadonlyArray<string> = []) {
    this.history = [...history]
    this.index = this.history.length
  }

  get line() {
    return this.text.join("")
  }

  set(line: string, cursor?: number) {
    this.text = graphemes(cleanInput(line))
    this.cursor = cursor === undefined ? this.text.length : Math.max(0, Math.min(cursor, this.text.length))
  }

  insert(s: string) {
    const g = graphemes(cleanInput(s))
    this.text.splice(this.cursor, 0, ...g)
    this.cursor += g.length
  }

  /** Replaces text[start, cursor) (in characters of the line as a string) with `word`. */
  replaceBefore(startChars: number, word: string) {
    const before = graphemes(this.text.slice(0, this.cursor).join("").slice(0, startChars))
    const after = this.text.slice(this.cursor)
    const inserted = graphemes(cleanInput(word))
    this.text = [...before, ...inserted, ...after]
    this.cursor = before.length + inserted.length
  }

  before() {
    return this.text.slice(0, this.cursor).join("")
  }

  /** The prompt to show and the text after it (different while searching). */
  view(prompt: string): { readonly prompt: string; readonly text: ReadonlyArray<string>; readonly cursor: number } {
    if (this.search === undefined) return { prompt, text: this.text, cursor: this.cursor }
    const found = this.search.match < 0 ? "" : this.history[this.search.match]!
    const text = graphemes(found)
    const at = found.indexOf(this.search.query)
    return { prompt: `(reverse-i-search${this.search.match < 0 && this.search.query !== "" ? ", not found" : ""})'${cleanInput(this.search.query)}': `, text, cursor: at < 0 ? text.length : graphemes(found.slice(0, at)).length }
  }

  /** Adds a submitted line to the in-memory history (the caller saves the file). */
  remember(line: string) {
    this.history = withLine(this.history, line)
    this.index = this.history.length
    this.draft = []
  }

  private find(query: string, from: number) {
    for (let i = Math.min(from, this.history.length - 1); i >= 0; i--) if (this.history[i]!.includes(query)) return i
    return -1
  }

  private keySearch(str: string | undefined, key: Key): EditorAction {
    const s = this.search!
    if (key.ctrl && key.name === "r") {
      const next = this.find(s.query, (s.match < 0 ? this.history.length : s.match) - 1)
      if (next >= 0) s.match = next
      return none
    }
    if ((key.ctrl && key.name === "g") || key.name === "escape" || (key.ctrl && key.name === "c")) {
      this.text = s.saved.text
      this.cursor = s.saved.cursor
      this.search = undefined
      return none
    }
    if (key.name === "backspace") {
      s.query = graphemes(s.query).slice(0, -1).join("")
      s.match = s.query === "" ? -1 : this.find(s.query, this.history.length - 1)
      return none
    }
    const printable = str !== undefined && !key.ctrl && !key.meta && cleanInput(str) === str && str !== ""
    if (printable) {
      s.query += str
      const again = this.find(s.query, s.match < 0 ? this.history.length - 1 : s.match)
      s.match = again
      return none
    }
    // Any other key takes the match into the line, then acts as usual.
    const v = this.view("")
    const taken = s.match < 0 ? s.saved.text.join("") : this.history[s.match]!
    this.search = undefined
    this.set(taken, s.match < 0 ? s.saved.cursor : v.cursor)
    if (key.name === "return" || key.name === "enter") return this.key(str, key)
    if (key.name === "left" || key.name === "right" || key.name === "home" || key.name === "end" || (key.ctrl && (key.name === "a" || key.name === "e"))) return this.key(str, key)
    return none
  }

  /** One keypress (node:readline's emitKeypressEvents). */
  key(str: string | undefined, key: Key): EditorAction {
    if (this.search !== undefined) return this.keySearch(str, key)
    const name = key.name
    if (key.ctrl) {
      switch (name) {
        case "c":
          if (this.text.length === 0) return { type: "interrupt" }
          this.set("")
          this.index = this.history.length
          return none
        case "d":
          if (this.text.length === 0) return { type: "eof" }
          this.text.splice(this.cursor, 1)
          return none
        case "a":
          this.cursor = 0
          return none
        case "e":
          this.cursor = this.text.length
          return none
        case "b":
          this.cursor = Math.max(0, this.cursor - 1)
          return none
        case "f":
          this.cursor = Math.min(this.text.length, this.cursor + 1)
          return none
        case "u":
          this.text.splice(0, this.cursor)
          this.cursor = 0
          return none
        case "k":
          this.text.splice(this.cursor)
          return none
        case "h":
          return this.key(undefined, { name: "backspace" })
        case "w": {
          let i = this.cursor
          while (i > 0 && this.text[i - 1] === " ") i--
          while (i > 0 && this.text[i - 1] !== " ") i--
          this.text.splice(i, this.cursor - i)
          this.cursor = i
          return none
        }
        case "l":
          return { type: "clear-screen" }
        case "r":
          this.search = { query: "", match: -1, saved: { text: [...this.text], cursor: this.cursor } }
          return none
        case "p":
          return this.key(undefined, { name: "up" })
        case "n":
          return this.key(undefined, { name: "down" })
        case "left":
        case "right":
          return this.word(name === "left" ? -1 : 1)
        default:
          return none
      }
    }
    if (key.meta && (name === "b" || name === "f")) return this.word(name === "b" ? -1 : 1)
    switch (name) {
      case "return":
      case "enter": {
        const line = this.line
        this.set("")
        this.index = this.history.length
        return { type: "submit", line }
      }
      case "tab":
        return { type: "complete" }
      case "backspace":
        if (this.cursor > 0) {
          this.text.splice(this.cursor - 1, 1)
          this.cursor -= 1
        }
        return none
      case "delete":
        this.text.splice(this.cursor, 1)
        return none
      case "left":
        this.cursor = Math.max(0, this.cursor - 1)
        return none
      case "right":
        this.cursor = Math.min(this.text.length, this.cursor + 1)
        return none
      case "home":
        this.cursor = 0
        return none
      case "end":
        this.cursor = this.text.length
        return none
      case "up":
        if (this.index > 0) {
          if (this.index === this.history.length) this.draft = [...this.text]
          this.index -= 1
          this.set(this.history[this.index]!)
        }
        return none
      case "down":
        if (this.index < this.history.length) {
          this.index += 1
          if (this.index === this.history.length) {
            this.text = [...this.draft]
            this.cursor = this.text.length
          } else this.set(this.history[this.index]!)
        }
        return none
      default:
        break
    }
    if (str !== undefined && !key.meta && str !== "") {
      const clean = cleanInput(str)
      if (clean !== "") this.insert(clean)
    }
    return none
  }

  private word(direction: -1 | 1): EditorAction {
    let i = this.cursor
    if (direction < 0) {
      while (i > 0 && this.text[i - 1] === " ") i--
      while (i > 0 && this.text[i - 1] !== " ") i--
    } else {
      while (i < this.text.length && this.text[i] === " ") i++
      while (i < this.text.length && this.text[i] !== " ") i++
    }
    this.cursor = i
    return none
  }
}

// -------------------------------------------------------------------- screen

/**
 * The bottom of the terminal: the prompt and the typed line (any number of
 * rows), with output printed above it. It remembers on which row of the
 * input the cursor is, so it can go back to the input's first row, clear to
 * the end of the screen and write again, at any width.
 */
/** Output lines kept for painting the screen again. */
const recentMax = 500

export class Screen {
  private cursorRow = 0
  private last: { prompt: string; text: ReadonlyArray<string>; cursor: number } = { prompt: "", text: [], cursor: 0 }
  private shown = false
  /** The last lines printed, to paint the screen again after a resize. */
  private recent: Array<string> = []

  constructor(
    private readonly write: (s: string) => void,
    private readonly columns: () => number,
    private readonly rows: () => number = () => 24,
  ) {}

  private layoutOf(v: { prompt: string; text: ReadonlyArray<string>; cursor: number }, cols: number) {
    const cells = [...graphemes(v.prompt), ...v.text]
    const l = layout(cells.map(graphemeWidth), cols)
    const i = graphemes(v.prompt).length + v.cursor
    return { cells, ...l, at: i < l.starts.length ? l.starts[i]! : l.end }
  }

  private up() {
    return (this.cursorRow > 0 ? `\x1b[${this.cursorRow}A` : "") + "\r\x1b[J"
  }

  private draw(v: { prompt: string; text: ReadonlyArray<string>; cursor: number }) {
    const l = this.layoutOf(v, this.columns())
    let s = l.cells.join("")
    if (l.end.col === 0 && l.end.row > 0) s += "\r\n" // ended exactly at the last column: be on the next row, as we count
    const rowsUp = l.end.row - l.at.row
    if (rowsUp > 0) s += `\x1b[${rowsUp}A`
    s += "\r"
    if (l.at.col > 0) s += `\x1b[${l.at.col}C`
    this.cursorRow = l.at.row
    this.last = { prompt: v.prompt, text: [...v.text], cursor: v.cursor }
    this.shown = true
    return s
  }

  /** Shows the prompt and the line (after a keypress). */
  render(v: { prompt: string; text: ReadonlyArray<string>; cursor: number }) {
    this.write((this.shown ? this.up() : "\r") + this.draw(v))
  }

  /** Lines that were printed before the screen was ours (kept for painting it again). */
  remember(lines: ReadonlyArray<string>) {
    this.recent.push(...lines)
  }

  /** Prints lines above the input, then the input again below them. */
  print(text: string) {
    const lines = text.replace(/\t/g, " ").split(/\r?\n/)
    this.recent.push(...lines)
    if (this.recent.length > recentMax) this.recent.splice(0, this.recent.length - recentMax)
    const body = lines.join("\r\n")
    if (!this.shown) return this.write(`${body}\r\n`)
    this.write(`${this.up()}${body}\r\n${this.draw(this.last)}`)
  }

  /**
   * After a resize. Terminals rewrap what is on the screen each their own way
   * (xterm not at all; tmux reflows, but keeps the cursor's row, pushing rows
   * into the history), so where the input's rows went cannot be known: paint
   * the whole screen again, the latest output lines that fit, then the input.
   */
  resize() {
    if (!this.shown) return
    const cols = Math.max(1, this.columns())
    const free = Math.max(0, this.rows() - this.layoutOf(this.last, cols).rows)
    const shown: Array<string> = []
    let used = 0
    for (let i = this.recent.length - 1; i >= 0; i--) {
      const height = Math.max(1, Math.ceil(stringWidth(this.recent[i]!) / cols))
      if (used + height > free) break
      used += height
      shown.unshift(this.recent[i]!)
    }
    // Row by row (not "clear screen", which tmux and others first copy into the history).
    let erase = ""
    for (let r = 1; r <= Math.max(1, this.rows()); r++) erase += `\x1b[${r};1H\x1b[2K`
    this.write(`${erase}\x1b[H${shown.map((l) => `${l}\r\n`).join("")}${this.draw(this.last)}`)
  }

  clearScreen() {
    this.recent = []
    this.write(`\x1b[H\x1b[2J${this.draw(this.last)}`)
  }

  /** Leaves the input as it is and the cursor on a fresh line below it. */
  finish() {
    if (!this.shown) return
    const l = this.layoutOf(this.last, this.columns())
    const down = l.end.row - this.cursorRow
    // (Text that ended at the last column already has its empty row below.)
    this.write(`${down > 0 ? `\x1b[${down}B` : ""}${l.end.col === 0 && l.end.row > 0 ? "\r" : "\r\n"}`)
    this.shown = false
    this.cursorRow = 0
  }
}
