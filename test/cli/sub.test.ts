import { describe, expect, it } from "vitest"
import { UsageError } from "../../src/cli/options.ts"
import { render, targetsOf } from "../../src/cli/sub.ts"
import type { Publication } from "../../src/protocol/messages.ts"

const meta = { clock: 7, timestampMs: Date.UTC(2026, 11, 2, 5, 6, 7), id: undefined }

describe("bulletin sub's arguments and lines", () => {
  it("takes channels and @users, each a legal name", () => {
    expect(targetsOf(["general", "@ana"])).toEqual([{ kind: "channel", name: "general" }, { kind: "user", name: "ana" }])
    expect(() => targetsOf([])).toThrow(UsageError)
    for (const bad of ["@", "bad name", "-flag", "@ana\u001b[2J", "replication"]) expect(() => targetsOf([bad]), bad).toThrow(UsageError)
  })

  it("prints one sanitised line per publication: no terminal control, no line breaks", () => {
    const post: Publication = { service: "publish", user: "ana\u001b[31m", channel: "general", message: "two\nlines\tand \u202ebidi", meta, origin: "server-1", seq: 3 }
    const line = render(post, false, false)
    expect(line).toMatch(/^\[\d\d:\d\d:\d\d\] #general <ana\uFFFD\[31m> two\u23celines and \uFFFDbidi$/)
    expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/)
    const message: Publication = { service: "message", src: "bob", dst: "ana", message: "psst", meta }
    expect(render(message, false, true)).toMatch(/^\[\d\d:\d\d:\d\d\] @ana <bob> psst \(sealed\)$/)
  })

  it("--json: one object per line, the text exactly as sent", () => {
    const post: Publication = { service: "publish", user: "ana", channel: "general", message: "a\nb \u001b", meta, origin: "server-1", seq: 3 }
    const line = render(post, true, false)
    expect(line.includes("\n")).toBe(false)
    expect(JSON.parse(line)).toEqual({ type: "publish", time: "2026-12-02T05:06:07.000Z", timestamp: meta.timestampMs, channel: "general", user: "ana", message: "a\nb \u001b", clock: 7, origin: "server-1", seq: 3 })
    expect(JSON.parse(render({ service: "message", src: "bob", dst: "ana", message: "m", meta: { ...meta, timestampMs: undefined } }, true, true))).toMatchObject({ type: "message", dst: "ana", src: "bob", sealed: true })
  })
})
