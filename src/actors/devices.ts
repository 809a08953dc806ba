import { Effect } from "effect"
import { Transport } from "../transport/Transport.ts"
import { supervised } from "./runtime.ts"

export interface BrokerConfig {
  /** ROUTER for clients and bots, standard port 5555. */
  readonly frontend: string
  /** DEALER for servers, standard port 5556; spreads requests round-robin. */
  readonly backend: string
}

export interface ProxyConfig {
  /** XSUB for publishers, standard port 5557. */
  readonly frontend: string
  /** XPUB for subscribers, standard port 5558. */
  readonly backend: string
}

/** The broker role: a ROUTER/DEALER device, restarted (sockets and all) if it ever stops. */
export const broker = (config: BrokerConfig) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    return yield* supervised("broker", Effect.scoped(transport.broker(config.frontend, config.backend)))
  })

/** The proxy role: an XSUB/XPUB device. */
export const proxy = (config: ProxyConfig) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    return yield* supervised("proxy", Effect.scoped(transport.proxy(config.frontend, config.backend)))
  })
