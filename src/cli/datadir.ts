import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { hostname } from "node:os"
import { join } from "node:path"

/**
 * A data folder belongs to one server, for good: the first server to use it
 * writes its name into OWNER, and a server of another name refuses it. While a
 * server runs, LOCK holds its host and pid, so a second process on the same
 * host cannot open the same folder (LMDB itself would happily let it).
 */
export const claimDataDir = (dir: string, name: string): void => {
  mkdirSync(dir, { recursive: true })
  const ownerFile = join(dir, "OWNER")
  if (existsSync(ownerFile)) {
    const owner = readFileSync(ownerFile, "utf8").trim()
    if (owner !== name) throw new Error(`data folder ${dir} belongs to server '${owner}', not '${name}': every server needs its own folder`)
  } else {
    writeFileSync(ownerFile, `${name}\n`)
  }
  const lockFile = join(dir, "LOCK")
  const me = { host: hostname(), pid: process.pid, started: startTime(process.pid) }
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockFile, "wx")
      writeFileSync(fd, JSON.stringify(me))
      closeSync(fd)
      process.on("exit", () => rmSync(lockFile, { force: true }))
      return
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
      let holder: { host?: string; pid?: number; started?: string } = {}
      try { holder = JSON.parse(readFileSync(lockFile, "utf8")) } catch { /* torn lock file: stale */ }
      // Only a live process on this host holds the lock; anything else is
      // what a SIGKILL left behind. A container restarted after a kill has
      // the same host name and counts pids from 1 again: the holder's pid may
      // now be another process, or a thread of this one. So where /proc
      // tells, the holder is alive only if that pid is a process started
      // when the holder was.
      if (holder.host === me.host && typeof holder.pid === "number" && holder.pid !== me.pid && alive(holder.pid, holder.started)) {
        throw new Error(`data folder ${dir} is in use by pid ${holder.pid}`)
      }
      rmSync(lockFile, { force: true })
    }
  }
  throw new Error(`cannot lock data folder ${dir}`)
}

/** When a process started (clock ticks since boot, from /proc), if this system tells; undefined for a thread that is not a process. */
const startTime = (pid: number): string | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    // A thread's id answers kill(0) too, but is not a process (its Tgid is another id).
    if (/^Tgid:\s*(\d+)/m.exec(status)?.[1] !== String(pid)) return undefined
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]
  } catch {
    return undefined
  }
}

const alive = (pid: number, started: string | undefined) => {
  if (existsSync("/proc/self/stat")) return started === undefined ? startTime(pid) !== undefined : startTime(pid) === started
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}
