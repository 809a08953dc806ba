import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, scrypt, timingSafeEqual } from "node:crypto"
import { Effect } from "effect"

/**
 * Accounts (our extension): a name may be claimed with a password. The claim
 * is an op like any other (`account`: salt and scrypt hash), replicated; a
 * login to a claimed name needs its password and returns a token; a request
 * that acts as a claimed user (posts as it, sends as it, reads its private
 * conversations) must carry one.
 *
 * A token is `issuedAtSec.nonce.mac`, the mac an HMAC keyed with the cluster's
 * secret over the user, the claim that holds (its origin and seq) and the
 * rest: any server of the cluster verifies it without state, nobody without
 * the key can make one, and one issued for a claim that lost (two first
 * claims at once on two servers) stops working once the winner is known.
 *
 * The host gives the randomness and the hashing: real ones in production,
 * deterministic ones in the simulator.
 */
export interface Credentials {
  /** Random hex (salts, nonces): unguessable in production. */
  readonly random: (bytes: number) => Effect.Effect<string>
  /** The password's salted hash, hex (scrypt in production: off the event loop). */
  readonly hash: (password: string, salt: string) => Effect.Effect<string>
  /** HMAC keyed with the cluster's secret, hex. */
  readonly mac: (data: string) => string
  /** A 32-byte key for `label`, derived from the cluster's secret (sealing replication, private topics). */
  readonly key: (label: string) => Uint8Array
  /** 12 fresh bytes: a sealing nonce (random in production, from the seed in the simulator). */
  readonly nonce: () => Uint8Array
}

// --- sealing: AES-256-GCM, `0xb1 | nonce (12) | tag (16) | ciphertext` ------------------------

const sealVersion = 0xb1

/** Encrypts and authenticates `plain` with `key` (32 bytes). */
export const seal = (key: Uint8Array, nonce: Uint8Array, plain: Uint8Array): Uint8Array => {
  const cipher = createCipheriv("aes-256-gcm", key, nonce)
  const body = Buffer.concat([cipher.update(plain), cipher.final()])
  return Buffer.concat([Buffer.of(sealVersion), nonce, cipher.getAuthTag(), body])
}

/** The plain bytes of a frame sealed with `key`, or undefined if it was not (forged, altered, another key). */
export const unseal = (key: Uint8Array, sealed: Uint8Array): Uint8Array | undefined => {
  if (sealed.length < 29 || sealed[0] !== sealVersion) return undefined
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, sealed.subarray(1, 13))
    decipher.setAuthTag(sealed.subarray(13, 29))
    return Buffer.concat([decipher.update(sealed.subarray(29)), decipher.final()])
  } catch {
    return undefined
  }
}

/** The label of the replication stream's key. */
export const replicationSeal = "replication"

/**
 * A claimed user's private topic and its key: what its logged-in clients
 * subscribe to and decrypt with. The proxy's subscriber port is open to
 * anyone (standard clients), and ZeroMQ topics match by prefix, so a
 * subscriber to "" sees every frame: the topic keeps the messages off the
 * name's public topic, the key keeps them unreadable to everyone else.
 */
export const privateTopic = (c: Credentials, user: string, claim: string) => ({
  topic: `~${c.mac(`private topic\u0000${user}\u0000${claim}`).slice(0, 32)}`,
  key: c.key(`private key\u0000${user}\u0000${claim}`),
})

/** How long a token is good for. */
export const tokenMaxAgeMs = 30 * 24 * 3_600_000

const macInput = (user: string, claim: string, issuedAtSec: number, nonce: string) => `bulletin token\u0000${user}\u0000${claim}\u0000${issuedAtSec}\u0000${nonce}`

export const claimRef = (op: { readonly origin: string; readonly seq: number }) => `${op.origin}/${op.seq}`

export const issueToken = (c: Credentials, user: string, claim: string, nowMs: number) =>
  Effect.map(c.random(16), (nonce) => {
    const at = Math.floor(nowMs / 1000)
    return `${at}.${nonce}.${c.mac(macInput(user, claim, at, nonce))}`
  })

/** Whether `token` was issued by this cluster for `user` under `claim`, within tokenMaxAgeMs of `nowMs`. */
export const tokenValid = (c: Credentials, token: unknown, user: string, claim: string, nowMs: number): boolean => {
  if (typeof token !== "string" || token.length > 200) return false
  const m = /^(\d{1,12})\.([0-9a-f]{32})\.([0-9a-f]{64})$/.exec(token)
  if (m === null) return false
  const at = Number(m[1])
  if (nowMs - at * 1000 > tokenMaxAgeMs || at * 1000 - nowMs > 300_000) return false
  const want = Buffer.from(c.mac(macInput(user, claim, at, m[2]!)), "hex")
  const got = Buffer.from(m[3]!, "hex")
  return want.length === got.length && timingSafeEqual(want, got)
}

/** Whether `password` is the one `account` was claimed with. */
export const passwordMatches = (c: Credentials, password: string, account: { readonly salt: string; readonly hash: string }) =>
  Effect.map(c.hash(password, account.salt), (h) => {
    const a = Buffer.from(h, "hex")
    const b = Buffer.from(account.hash, "hex")
    return a.length === b.length && timingSafeEqual(a, b)
  })

/** Production: crypto randomness, scrypt (N = 2^14, r = 8, p = 1, 32 bytes) on libuv's pool, HMAC-SHA256 with a key derived from the cluster's secret. */
export const nodeCredentials = (clusterSecret: string): Credentials => {
  const key = createHash("sha256").update(`bulletin tokens\u0000${clusterSecret}`).digest()
  const keys = new Map<string, Uint8Array>()
  return {
    key: (label) => {
      let k = keys.get(label)
      if (k === undefined) {
        k = createHash("sha256").update(`bulletin key\u0000${label}\u0000${clusterSecret}`).digest()
        if (keys.size < 4096) keys.set(label, k)
      }
      return k
    },
    nonce: () => randomBytes(12),
    random: (bytes) => Effect.sync(() => randomBytes(bytes).toString("hex")),
    hash: (password, salt) =>
      Effect.callback<string>((resume) => {
        scrypt(password, Buffer.from(salt, "hex"), 32, { N: 16_384, r: 8, p: 1 }, (error, derived) => {
          // scrypt fails only on bad parameters (ours are fixed): a defect.
          if (error !== null) resume(Effect.die(error))
          else resume(Effect.succeed(derived.toString("hex")))
        })
      }),
    mac: (data) => createHmac("sha256", key).update(data).digest("hex"),
  }
}

/**
 * Deterministic, for the simulator: randomness from its own stream, a fast
 * salted SHA-256 for the hash (the simulator checks who may act as whom, not
 * how hard a hash is to break), HMAC with a fixed key.
 */
export const simulatedCredentials = (next: () => number): Credentials => ({
  key: (label) => createHash("sha256").update(`simulated key\u0000${label}`).digest(),
  nonce: () => Uint8Array.from({ length: 12 }, () => Math.floor(next() * 256)),
  random: (bytes) => Effect.sync(() => Array.from({ length: bytes }, () => Math.floor(next() * 256).toString(16).padStart(2, "0")).join("")),
  hash: (password, salt) => Effect.sync(() => createHash("sha256").update(`${salt}\u0000${password}`).digest("hex")),
  mac: (data) => createHmac("sha256", "simulated cluster").update(data).digest("hex"),
})
