import { createWebSocketInspector } from "@statelyai/inspect"
import { createInspectorServer } from "@statelyai/inspect/server"
import type { InspectionEvent } from "xstate"

/**
 * The XState inspector (`--inspect`): every machine's inspection events go
 * over a WebSocket to a relay (`bulletin inspector`, or the one `bulletin up
 * --inspect` starts), which passes them to the Stately inspector page. That
 * page is loaded from stately.ai, so it needs the internet; our own
 * dashboard does not.
 *
 * While the relay is unreachable, at most `deferredMax` events wait (the
 * oldest dropped): a role never grows without bound because nobody watches.
 */
export const defaultInspectUrl = "ws://127.0.0.1:8080"

export const statelyInspector = (url: string, deferredMax = 200) => {
  const inspector = createWebSocketInspector({ url, maxDeferredEvents: deferredMax })
  return {
    observer: (e: InspectionEvent) => inspector.inspect.next?.(e),
    stop: () => inspector.stop(),
  }
}

/** The relay; its page (http://127.0.0.1:PORT) embeds the hosted Stately inspector. */
export const startInspectorRelay = (port: number) => {
  const relay = createInspectorServer({ port, autoOpen: false })
  return { url: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}`, stop: () => relay.stop() }
}
