import { Duration, Effect, Random } from "effect"
import { type ClientConfig, makeClient } from "./client.ts"
import { supervised } from "./runtime.ts"

export interface BotConfig extends ClientConfig {
  /** Posts per second. */
  readonly messagesPerSecond: number
  /** Posts to one channel before picking another. */
  readonly messagesPerChannel: number
  /** Stop after this many posts (0: run forever). Tests and benchmarks bound their loops. */
  readonly messagesMax: number
  /** Fixed name; by default a random one. */
  readonly name: string | undefined
  /** Log in with this password (claims the name on the first login; needed where the cluster requires accounts). */
  readonly password?: string | undefined
  /** Called after every acknowledged post (the host's liveness file for its healthcheck). */
  readonly onPosted?: () => void
}

const words = ["hello", "zeromq", "lamport", "bully", "berkeley", "replica", "broker", "proxy", "clock", "channel", "quorum", "heartbeat"]

/**
 * The bot role: logs in under a random name, then forever picks a random
 * existing channel (creating one if there is none) and posts
 * `messagesPerChannel` messages to it at `messagesPerSecond`.
 */
export const bot = (config: BotConfig) =>
  Effect.gen(function* () {
    const client = yield* makeClient(config)
    const name = config.name ?? `bot-${(yield* Random.nextIntBetween(0, 36 ** 4, { halfOpen: true })).toString(36).padStart(4, "0")}`
    const login = yield* client.login(name, config.password)
    if (!login.ok) return yield* Effect.fail(new Error(`bot ${name}: login refused: ${login.error}`))
    yield* Effect.logInfo(`bot ${name}: logged in`)
    const pause = Duration.millis(1000 / Math.max(config.messagesPerSecond, 0.001))
    let sent = 0

    const pickChannel = Effect.gen(function* () {
      const listed = yield* client.channels()
      const channels = Array.isArray(listed.data.channels) ? (listed.data.channels as Array<unknown>).filter((c): c is string => typeof c === "string") : []
      if (channels.length > 0) return channels[yield* Random.nextIntBetween(0, channels.length, { halfOpen: true })]!
      const created = yield* client.channel("general")
      if (!created.ok) yield* Effect.logWarning(`bot ${name}: cannot create general: ${created.error}`)
      return "general"
    })

    const round = Effect.gen(function* () {
      const channel = yield* pickChannel
      for (let i = 0; i < config.messagesPerChannel; i++) {
        if (config.messagesMax > 0 && sent >= config.messagesMax) return
        const text = `${words[yield* Random.nextIntBetween(0, words.length, { halfOpen: true })]} #${sent + 1} from ${name}`
        const r = yield* client.publish(channel, text)
        if (r.ok) {
          sent += 1
          config.onPosted?.()
        } else yield* Effect.logWarning(`bot ${name}: publish to ${channel} refused: ${r.error}`)
        yield* Effect.sleep(pause)
      }
    })

    yield* supervised(
      `bot ${name}`,
      Effect.whileLoop({ while: () => config.messagesMax === 0 || sent < config.messagesMax, body: () => round, step: () => {} }),
    )
    yield* Effect.logInfo(`bot ${name}: done after ${sent} posts`)
    return sent
  })
