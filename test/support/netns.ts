import { execFileSync, spawnSync } from "node:child_process"

/**
 * Hosts for multi-host tests: one Linux network namespace per host, each with
 * its own `eth0` and address, all plugged into a bridge that lives in a
 * namespace of its own (the "switch"). Nothing is added to the machine's own
 * namespace, and everything is removed by `teardown`.
 *
 * A cut takes the host's cable out of the switch (`nomaster`): the host keeps
 * its link and address, but nothing it sends arrives anywhere and nothing
 * reaches it — TCP connections stay open and silent, as across a real broken
 * network, not refused as when a process dies.
 */
export interface Network {
  readonly prefix: string
  /** Host name -> its address. */
  readonly addresses: Readonly<Record<string, string>>
  /** Argument vector that runs `argv` inside `host`'s namespace. */
  readonly exec: (host: string, argv: ReadonlyArray<string>) => Array<string>
  readonly cut: (host: string) => void
  readonly heal: (host: string) => void
  readonly teardown: () => void
}

const ip = (...args: Array<string>) => execFileSync("ip", args, { stdio: ["ignore", "pipe", "pipe"] }).toString()

/** Why namespaces cannot be made here, or undefined when they can (checked by making one). */
export const netnsUnavailable = (): string | undefined => {
  if (process.platform !== "linux") return `not Linux (${process.platform})`
  if (process.getuid?.() !== 0) return "not root: creating network namespaces needs CAP_SYS_ADMIN"
  const probe = `bnprobe${process.pid}`
  const add = spawnSync("ip", ["netns", "add", probe], { encoding: "utf8" })
  if (add.error !== undefined) return `iproute2 missing (${add.error.message}); scripts/setup.sh installs it`
  if (add.status !== 0) return `ip netns add failed: ${add.stderr.trim()}`
  spawnSync("ip", ["netns", "del", probe])
  return undefined
}

/** Removes namespaces a killed earlier run left behind (same prefix family, other pids that are gone). */
const sweep = (family: string) => {
  for (const line of ip("netns", "list").split("\n")) {
    const name = line.split(" ")[0] ?? ""
    const m = new RegExp(`^${family}(\\d+)-`).exec(name)
    if (m === null) continue
    const pid = Number(m[1])
    let alive = true
    try {
      process.kill(pid, 0)
    } catch {
      alive = false
    }
    if (!alive) spawnSync("ip", ["netns", "del", name])
  }
}

/**
 * Makes the hosts: `hosts` maps a short host name (≤ 12 chars) to its last
 * address byte in `subnet` (a /24 such as "10.81.0").
 */
export const makeNetwork = (family: string, subnet: string, hosts: Readonly<Record<string, number>>): Network => {
  sweep(family)
  const prefix = `${family}${process.pid}-`
  const ns = (host: string) => `${prefix}${host}`
  const sw = ns("switch")
  const made: Array<string> = []
  const addresses: Record<string, string> = {}
  const teardown = () => {
    for (const n of made.reverse()) spawnSync("ip", ["netns", "del", n])
    made.length = 0
  }
  try {
    ip("netns", "add", sw)
    made.push(sw)
    ip("-n", sw, "link", "add", "br0", "type", "bridge")
    ip("-n", sw, "link", "set", "br0", "up")
    for (const [host, last] of Object.entries(hosts)) {
      const n = ns(host)
      ip("netns", "add", n)
      made.push(n)
      // The switch-side end is named after the host; the host sees eth0.
      ip("-n", sw, "link", "add", `p-${host}`, "type", "veth", "peer", "name", "eth0", "netns", n)
      ip("-n", sw, "link", "set", `p-${host}`, "master", "br0", "up")
      ip("-n", n, "link", "set", "lo", "up")
      ip("-n", n, "addr", "add", `${subnet}.${last}/24`, "dev", "eth0")
      ip("-n", n, "link", "set", "eth0", "up")
      addresses[host] = `${subnet}.${last}`
    }
  } catch (e) {
    teardown()
    throw e
  }
  const known = (host: string) => {
    if (addresses[host] === undefined) throw new Error(`no host ${host}`)
    return host
  }
  return {
    prefix,
    addresses,
    exec: (host, argv) => ["ip", "netns", "exec", ns(known(host)), ...argv],
    cut: (host) => void ip("-n", sw, "link", "set", `p-${known(host)}`, "nomaster"),
    heal: (host) => void ip("-n", sw, "link", "set", `p-${known(host)}`, "master", "br0"),
    teardown,
  }
}
