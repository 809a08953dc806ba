import { describe, expect, it } from "vitest"
import { fitPage, listPage } from "../../src/actors/server.ts"
import { encode } from "../../src/protocol/codec.ts"
import { Limits } from "../../src/protocol/limits.ts"
import type { Post } from "../../src/protocol/messages.ts"

const post = (i: number, size: number): Post => ({ service: "publish", user: "u", channel: "c", message: `${i} ${"x".repeat(size)}`, timestamp: 0, clock: i, origin: "s1", seq: i })

describe("a history page", () => {
  it("stays within historyReplyBytesMax: forward pages keep their first entries, the others their last", () => {
    const posts = Array.from({ length: 500 }, (_, i) => post(i + 1, 3_900))
    const forward = fitPage(posts, false, "forward")
    const backward = fitPage(posts, false, "backward")
    for (const page of [forward, backward]) {
      expect(page.more).toBe(true)
      expect(page.posts.reduce((n, p) => n + encode(p).byteLength, 0)).toBeLessThanOrEqual(Limits.historyReplyBytesMax)
      expect(page.posts.length).toBeGreaterThan(5)
    }
    expect(forward.posts[0]).toBe(posts[0])
    expect(backward.posts.at(-1)).toBe(posts.at(-1))
  })

  it("leaves a page that fits as it is, and always keeps one entry", () => {
    const small = Array.from({ length: 50 }, (_, i) => post(i + 1, 10))
    expect(fitPage(small, false, "backward")).toEqual({ posts: small, more: false })
    const huge = [post(1, 60_000), post(2, 60_000)]
    expect(fitPage(huge, false, "forward").posts).toEqual([huge[0]])
  })
})

describe("a page of users or channels", () => {
  const names = Array.from({ length: 5_000 }, (_, i) => `name-${String(i).padStart(5, "0")}-${"x".repeat(20)}`).sort()

  it("fits listReplyBytesMax, and paging with `after` returns every name once, in order", () => {
    const seen: Array<string> = []
    let after: string | undefined
    for (let page = 0; page < 100; page++) {
      const p = listPage("channels", names, after === undefined ? {} : { after })
      expect(encode(p.channels).byteLength).toBeLessThanOrEqual(Limits.listReplyBytesMax + 8)
      seen.push(...p.channels)
      if (!p.more) break
      after = p.channels.at(-1)
    }
    expect(seen).toEqual(names)
  })

  it("honours limit, and gives a short list whole with more: false (what a standard client sees)", () => {
    expect(listPage("users", names, { limit: 3 })).toEqual({ users: names.slice(0, 3), more: true })
    expect(listPage("users", ["a", "b"], {})).toEqual({ users: ["a", "b"], more: false })
    expect(listPage("users", ["a", "b", "c"], { after: "a" })).toEqual({ users: ["b", "c"], more: false })
  })
})
