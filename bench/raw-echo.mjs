// The physical limit of bulletin's request path: a server that does nothing
// but what the path itself costs. For every request from the broker it
// publishes the body on the proxy (topic "bench") and replies with it.
import * as zmq from "zeromq"

const [broker, proxy] = process.argv.slice(2)
zmq.context.blocky = false
// With the cluster's key (BULLETIN_CLUSTER_KEY '<public> <secret>'), CURVE on both links, as a bulletin server has.
const [publicKey, secretKey] = (process.env.BULLETIN_CLUSTER_KEY ?? "").trim().split(/\s+/)
const curve = secretKey === undefined ? {} : { curveServerKey: publicKey, curvePublicKey: publicKey, curveSecretKey: secretKey }
const dealer = new zmq.Dealer({ linger: 0, sendHighWaterMark: 100000, receiveHighWaterMark: 100000, ...curve })
const pub = new zmq.Publisher({ linger: 0, sendHighWaterMark: 100000, noDrop: true, ...curve })
dealer.connect(broker)
pub.connect(proxy)
process.on("SIGTERM", () => process.exit(0))
console.log("raw echo ready")
for await (const frames of dealer) {
  const body = frames[frames.length - 1]
  for (;;) {
    try { await pub.send(["bench", body]); break } catch { await new Promise((r) => setTimeout(r, 1)) }
  }
  await dealer.send(frames)
}
