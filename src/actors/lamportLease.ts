import * as fs from "node:fs"
import type { LamportClock } from "../machines/lamport.ts"

/** Where a lease is kept: a file in the data folder, or (in the simulator) a cell of the simulated disk. */
export interface LeaseStore {
  /** The last lease written, if any. */
  readonly load: () => number | undefined
  /** Durable before it returns. */
  readonly save: (lease: number) => void
  /**
   * Durable when `done` is called (off the event loop), unless a greater
   * lease was saved meanwhile: a lease never goes back. Without it, every
   * renewal is a `save`.
   */
  readonly saveSoon?: (lease: number, done: (error?: Error) => void) => void
}

/** A lease in `file`: written whole to a temporary file, fsynced, then renamed. */
export const fileLease = (file: string): LeaseStore => {
  /** The greatest lease renamed into place by this process. */
  let saved = -1
  const load = () => {
    if (!fs.existsSync(file)) return undefined
    const text = fs.readFileSync(file, "utf8").trim()
    const previous = Number(text)
    if (!Number.isSafeInteger(previous) || previous < 0 || text === "") throw new Error(`${file}: not a Lamport lease: '${text}'`)
    return previous
  }
  const save = (lease: number) => {
    const tmp = `${file}.tmp`
    const fd = fs.openSync(tmp, "w")
    try {
      fs.writeSync(fd, String(lease))
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, file)
    saved = Math.max(saved, lease)
  }
  // The write and fsync on libuv's threads; the rename (cheap, and where
  // the order of leases is decided) back on the event loop, only if no
  // greater lease was saved meanwhile.
  const saveSoon = (lease: number, done: (error?: Error) => void) => {
    const tmp = `${file}.soon`
    fs.open(tmp, "w", (error, fd) => {
      if (error) return done(error)
      const close = (e: Error | null) =>
        fs.close(fd, () => {
          if (e) return done(e)
          if (lease <= saved) return done()
          try {
            fs.renameSync(tmp, file)
            saved = lease
            done()
          } catch (renameError) {
            done(renameError as Error)
          }
        })
      fs.write(fd, String(lease), (e) => (e ? close(e) : fs.fsync(fd, close)))
    })
  }
  return { load, save, saveSoon }
}

/**
 * Keeps a server's Lamport clock from going back across a restart. The
 * store only remembers the clocks of stored operations, but the server also
 * ticks for replies, announcements and peer requests; a restarted process
 * that started from the store's maximum could send a value it had already
 * sent, breaking causality (the simulator checks exactly this). So the
 * server leases blocks of clock values: before the clock passes the lease
 * on disk, a new lease `value + blockTicks` is written, and a restart starts
 * above the last lease. The next lease is written ahead, off the event loop,
 * once the clock is halfway through the current one; only a clock that
 * reaches the lease before that write is done (a jump) waits for a
 * synchronous one.
 */
export const leaseLamport = (store: LeaseStore | string, lamport: LamportClock, blockTicks = 10_000): void => {
  const lease_ = typeof store === "string" ? fileLease(store) : store
  const previous = lease_.load()
  if (previous !== undefined) lamport.observe(previous)
  let lease = lamport.current + blockTicks
  lease_.save(lease)
  let renewing = false
  const saveSoon = lease_.saveSoon
  lamport.onAdvance = (value) => {
    if (value >= lease) {
      lease = value + blockTicks
      lease_.save(lease)
      return
    }
    if (renewing || saveSoon === undefined || value < lease - blockTicks / 2) return
    renewing = true
    const next = value + blockTicks
    saveSoon(next, (error) => {
      renewing = false
      // On failure the synchronous write at the lease will say why (and stop the server if it fails too).
      if (error === undefined) lease = Math.max(lease, next)
    })
  }
}
