import * as fs from "node:fs"
import * as zmq from "zeromq"

/**
 * The cluster's key: one CURVE key pair shared by every cluster role
 * (servers, reference, broker, proxy). Every link between them is encrypted
 * and authenticated with it (ZeroMQ CURVE), and each role's ZAP handler
 * admits only connections that present it: whoever does not hold the secret
 * cannot rank, list, replicate, publish replication, adjust clocks, take part
 * in elections or serve requests from the broker. Client-facing ports stay
 * plain for standard clients.
 *
 * A key file holds two lines, `public <z85>` and `secret <z85>` (40
 * characters each); `BULLETIN_CLUSTER_KEY` may hold `<public> <secret>` (Z85
 * has no space; it does have ':', so nothing else separates them).
 */
export interface ClusterKey {
  readonly publicKey: string
  readonly secretKey: string
}

/** CURVE on every cluster link (the default), or none (open mode: to join standard servers of other implementations). */
export type Security = { readonly mode: "curve"; readonly key: ClusterKey } | { readonly mode: "open" }

export const openSecurity: Security = { mode: "open" }

const z85Chars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
const z85Key = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/

/** Z85 (ZeroMQ RFC 32) of a key's 32 bytes: what a ZAP request carries in binary, as the sockets take it. */
export const z85 = (bytes: Uint8Array): string => {
  let out = ""
  for (let i = 0; i + 4 <= bytes.length; i += 4) {
    let v = ((bytes[i]! << 24) >>> 0) + (bytes[i + 1]! << 16) + (bytes[i + 2]! << 8) + bytes[i + 3]!
    let chunk = ""
    for (let j = 0; j < 5; j++) {
      chunk = z85Chars[v % 85]! + chunk
      v = Math.floor(v / 85)
    }
    out += chunk
  }
  return out
}

export const generateKey = (): ClusterKey => zmq.curveKeyPair()

export const formatKey = (k: ClusterKey): string => `public ${k.publicKey}\nsecret ${k.secretKey}\n`

export const parseKey = (text: string, where: string): ClusterKey => {
  const inline = /^\s*(\S{40})[\s,]+(\S{40})\s*$/.exec(text)
  const fields = new Map(text.split(/\r?\n/).map((l) => l.trim().split(/\s+/, 2) as [string, string]).filter(([k, v]) => k !== "" && v !== undefined))
  const publicKey = inline?.[1] ?? fields.get("public")
  const secretKey = inline?.[2] ?? fields.get("secret")
  if (publicKey === undefined || secretKey === undefined || !z85Key.test(publicKey) || !z85Key.test(secretKey)) {
    throw new Error(`${where}: not a cluster key (expected lines 'public <40 z85 characters>' and 'secret <40 z85 characters>'; make one with \`bulletin keygen\`)`)
  }
  return { publicKey, secretKey }
}

export const readKeyFile = (file: string): ClusterKey => parseKey(fs.readFileSync(file, "utf8"), file)

/** Writes a new key to `file`, readable by its owner only; keeps an existing one when `keep`. */
export const writeKeyFile = (file: string, keep: boolean): { readonly key: ClusterKey; readonly created: boolean } => {
  if (keep && fs.existsSync(file)) return { key: readKeyFile(file), created: false }
  const key = generateKey()
  fs.writeFileSync(file, formatKey(key), { mode: 0o600 })
  return { key, created: true }
}

/**
 * The security a role runs with: `--open` (or BULLETIN_OPEN=1) for open mode;
 * otherwise the key from `--key FILE` / BULLETIN_KEY_FILE, or from
 * BULLETIN_CLUSTER_KEY. No key and not open: an error that says what to do.
 */
export const securityFrom = (o: { readonly open: boolean; readonly keyFile: string | undefined; readonly env: NodeJS.ProcessEnv }): Security => {
  if (o.open) return openSecurity
  if (o.keyFile !== undefined && o.keyFile !== "") return { mode: "curve", key: readKeyFile(o.keyFile) }
  const inline = o.env.BULLETIN_CLUSTER_KEY
  if (inline !== undefined && inline !== "") return { mode: "curve", key: parseKey(inline, "BULLETIN_CLUSTER_KEY") }
  throw new Error(
    "no cluster key: every link between cluster roles is authenticated. Make one with `bulletin keygen --out cluster.key` and give it to every role " +
      "(--key cluster.key, BULLETIN_KEY_FILE, or BULLETIN_CLUSTER_KEY='<public> <secret>'), or run in open mode with --open (BULLETIN_OPEN=1) to join standard servers",
  )
}
