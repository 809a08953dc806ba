import * as fs from "node:fs"
import type { LamportClock } from "../machines/lamport.ts"

/**
 * Keeps a server's Lamport clock from going back across a restart. The
 * store only remembers the clocks of stored operations, but the server also
 * ticks for replies, announcements and peer requests; a restarted process
 * that started from the store's maximum could send a value it had already
 * sent, breaking causality (the simulator checks exactly this). So the
 * server leases blocks of clock values: before the clock passes the lease
 * on disk, a new lease `value + blockTicks` is written (temporary file,
 * fsync, rename), and a restart starts above the last lease. One small
 * synchronous write per `blockTicks` ticks.
 */
export const leaseLamport = (file: string, lamport: LamportClock, blockTicks = 10_000): void => {
  const write = (lease: number) => {
    const tmp = `${file}.tmp`
    const fd = fs.openSync(tmp, "w")
    try {
      fs.writeSync(fd, String(lease))
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, file)
  }
  if (fs.existsSync(file)) {
    const previous = Number(fs.readFileSync(file, "utf8").trim())
    if (!Number.isSafeInteger(previous) || previous < 0) throw new Error(`${file}: not a Lamport lease: '${previous}'`)
    lamport.observe(previous)
  }
  let lease = lamport.current + blockTicks
  write(lease)
  lamport.onAdvance = (value) => {
    if (value < lease) return
    lease = value + blockTicks
    write(lease)
  }
}
