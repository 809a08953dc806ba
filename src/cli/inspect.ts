import { createServer } from "node:http"
import { type StatelyInspectionEvent, createInspector } from "@statelyai/inspect"
import { WebSocket, WebSocketServer } from "ws"
import type { InspectionEvent } from "xstate"

/** `bulletin inspector`'s options. */
export const spec = { port: { env: "INSPECT_PORT", default: "8080", help: "port of the relay (HTTP page and WebSocket)" } }

/** What createInspector sends through (declared, not exported, by @statelyai/inspect). */
type Adapter = Parameters<typeof createInspector>[0]

/**
 * The XState inspector (`--inspect`): every machine's inspection events go
 * over a WebSocket to a relay (`bulletin inspector`, or the one `bulletin up
 * --inspect` starts), which passes them to the Stately inspector page. That
 * page is loaded from stately.ai, so it needs the internet; our own
 * dashboard does not.
 *
 * While the relay is unreachable, at most `pendingMax` events wait (the
 * oldest dropped), plus each actor's registration: a role never grows
 * without bound because nobody watches.
 */
export const statelyInspector = (url: string, process: string, pendingMax = 200) => {
  const adapter = new RelayAdapter(url, process, pendingMax)
  const inspector = createInspector(adapter)
  adapter.start()
  return {
    observer: (e: InspectionEvent) => inspector.inspect.next?.(e),
    stop: () => adapter.stop(),
  }
}

/**
 * Sends the inspector's events to the relay over a WebSocket (session ids
 * qualified by the process's name), redialling
 * every 2 s while it is unreachable. Unlike @statelyai/inspect's own
 * adapter, it remembers each actor's registration (bounded) and sends them
 * all again on every (re)connection: machines are created once, at start, and
 * an inspector that never saw an actor's registration cannot show it. Events
 * made while disconnected wait, at most `pendingMax`, the oldest dropped.
 */
class RelayAdapter implements Adapter {
  readonly #url: string
  readonly #prefix: string
  readonly #pendingMax: number
  readonly #actors = new Map<string, string>()
  #pending: Array<string> = []
  #ws: WebSocket | undefined
  #open = false
  #stopped = false

  constructor(url: string, process: string, pendingMax: number) {
    this.#url = url
    this.#prefix = `${process}:`
    this.#pendingMax = pendingMax
  }

  start(): void {
    if (this.#stopped) return
    const ws = new WebSocket(this.#url)
    this.#ws = ws
    ws.on("open", () => {
      this.#open = true
      for (const m of this.#actors.values()) ws.send(m)
      for (const m of this.#pending.splice(0)) ws.send(m)
    })
    ws.on("error", () => {})
    ws.on("close", () => {
      this.#open = false
      if (!this.#stopped) setTimeout(() => this.start(), 2_000).unref()
    })
  }

  stop(): void {
    this.#stopped = true
    this.#ws?.close()
  }

  send(original: StatelyInspectionEvent): void {
    // Session ids count from x:0 in every process: several servers on one
    // relay would overwrite each other's actors. Qualify them by process.
    const q = (id: unknown) => (typeof id === "string" ? this.#prefix + id : id)
    const raw = original as unknown as Record<string, unknown>
    const event = { ...raw, sessionId: q(raw.sessionId), rootId: q(raw.rootId), parentId: q(raw.parentId), sourceId: q(raw.sourceId) } as unknown as StatelyInspectionEvent
    let text: string
    try {
      text = JSON.stringify(event)
    } catch {
      return // not serialisable (a cycle): the inspector cannot use it either
    }
    if (event.type === "@xstate.actor") {
      this.#actors.set(event.sessionId, text)
      if (this.#actors.size > actorsMax) this.#actors.delete(this.#actors.keys().next().value!)
      // Sent on connection with the others: not queued twice.
      if (this.#open) this.#ws?.send(text)
      return
    }
    if (this.#open) return void this.#ws?.send(text)
    this.#pending.push(text)
    if (this.#pending.length > this.#pendingMax) this.#pending.shift()
  }
}

const actorsMax = 1_000

/**
 * The relay: a WebSocket server that passes every sender's inspection events
 * to every viewer, and a page (http://127.0.0.1:PORT) that embeds the hosted
 * Stately inspector and feeds it those events.
 *
 * @statelyai/inspect's own relay keeps only the last 200 events for a viewer
 * that connects late; servers register their actors once, at start, so a page
 * opened a minute later knew no actor at all. This one keeps, per actor
 * session, its registration and its latest snapshot (bounded: `sessionsMax`),
 * and replays them to each new viewer before the live stream.
 */
export const startInspectorRelay = (port: number, inspectorUrl = "https://stately.ai/inspect", sessionsMax = 1_000) => {
  const actors = new Map<string, string>()
  const snapshots = new Map<string, string>()
  const remember = (map: Map<string, string>, key: string, value: string) => {
    map.delete(key)
    map.set(key, value)
    if (map.size > sessionsMax) map.delete(map.keys().next().value!)
  }
  const http = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" })
    res.end(bridgePage(port, inspectorUrl))
  })
  const wss = new WebSocketServer({ server: http, maxPayload: 1 << 20 })
  wss.on("connection", (ws) => {
    for (const m of actors.values()) ws.send(m)
    for (const m of snapshots.values()) ws.send(m)
    ws.on("message", (data) => {
      const text = data.toString()
      let event: { type?: unknown; sessionId?: unknown }
      try {
        event = JSON.parse(text) as typeof event
      } catch {
        return
      }
      if (typeof event.sessionId === "string") {
        if (event.type === "@xstate.actor") remember(actors, event.sessionId, text)
        if (event.type === "@xstate.snapshot") remember(snapshots, event.sessionId, text)
      }
      for (const client of wss.clients) if (client !== ws && client.readyState === WebSocket.OPEN) client.send(text)
    })
  })
  http.listen(port, "127.0.0.1")
  return {
    url: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}`,
    stop: () => {
      for (const c of wss.clients) c.terminate()
      wss.close()
      http.close()
    },
  }
}

/** The page: the hosted inspector in a frame, fed the relay's events once it says it is ready. */
const bridgePage = (port: number, inspectorUrl: string) => `<!doctype html>
<html><head><meta charset="utf-8"><title>bulletin: XState inspector</title>
<style>html,body{height:100%;margin:0}iframe{width:100%;height:100%;border:0}</style></head>
<body><iframe id="inspector" src="${inspectorUrl}"></iframe>
<script>
  const frame = document.getElementById("inspector")
  const waiting = []
  let ready = false
  window.addEventListener("message", (e) => {
    if (e.data && e.data.type === "@statelyai.connected") {
      ready = true
      for (const m of waiting.splice(0)) frame.contentWindow.postMessage(m, "*")
    }
  })
  const ws = new WebSocket("ws://" + location.hostname + ":${port}")
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data)
    if (ready) frame.contentWindow.postMessage(m, "*")
    else if (waiting.length < 100000) waiting.push(m)
  }
</script></body></html>`
