import * as fs from "node:fs"
import type { LamportClock } from "../machines/lamport.ts"

/** Where a lease is kept: a file in the data folder, or (in the simulator) a cell of the simulated disk. */
export interface LeaseStore {
  /** The last lease written, if any. */
  readonly load: () => number | undefined
  /** Durable before it returns. */
  readonly save: (lease: number) => void
}

/** A lease in `file`: written whole to a temporary file, fsynced, then renamed. */
export const fileLease = (file: string): LeaseStore => ({
  load: () => {
    if (!fs.existsSync(file)) return undefined
    const text = fs.readFileSync(file, "utf8").trim()
    const previous = Number(text)
    if (!Number.isSafeInteger(previous) || previous < 0 || text === "") throw new Error(`${file}: not a Lamport lease: '${text}'`)
    return previous
  },
  save: (lease) => {
    const tmp = `${file}.tmp`
    const fd = fs.openSync(tmp, "w")
    try {
      fs.writeSync(fd, String(lease))
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, file)
  },
})

/**
 * Keeps a server's Lamport clock from going back across a restart. The
 * store only remembers the clocks of stored operations, but the server also
 * ticks for replies, announcements and peer requests; a restarted process
 * that started from the store's maximum could send a value it had already
 * sent, breaking causality (the simulator checks exactly this). So the
 * server leases blocks of clock values: before the clock passes the lease
 * on disk, a new lease `value + blockTicks` is written, and a restart starts
 * above the last lease. One small synchronous write per `blockTicks` ticks.
 */
export const leaseLamport = (store: LeaseStore | string, lamport: LamportClock, blockTicks = 10_000): void => {
  const lease_ = typeof store === "string" ? fileLease(store) : store
  const previous = lease_.load()
  if (previous !== undefined) lamport.observe(previous)
  let lease = lamport.current + blockTicks
  lease_.save(lease)
  lamport.onAdvance = (value) => {
    if (value < lease) return
    lease = value + blockTicks
    lease_.save(lease)
  }
}
