import { describe, expect, it } from "vitest"
import { fitPage } from "../../src/actors/server.ts"
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
