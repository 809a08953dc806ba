#!/usr/bin/env node
// Summarises a V8 CPU profile (node --cpu-prof, `bulletin bench --profile DIR`):
// the share of samples by function (self time), and by package or source
// folder, so that a profile of a server under load says where its time goes.
//   node bench/profile-top.mjs FILE.cpuprofile [N]
import { readFileSync } from "node:fs"

const [file, n = "25"] = process.argv.slice(2)
if (file === undefined) {
  console.error("usage: node bench/profile-top.mjs FILE.cpuprofile [N]")
  process.exit(2)
}
const profile = JSON.parse(readFileSync(file, "utf8"))
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const self = new Map()
for (const id of profile.samples) self.set(id, (self.get(id) ?? 0) + 1)
const total = profile.samples.length
const where = (url) => {
  if (url === "") return "(native / V8)"
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (m) return m[1]
  const s = /\/(src|dist\/src|bench)\/([^/]+)\//.exec(url)
  if (s) return `${s[1]}/${s[2]}`
  if (url.startsWith("node:")) return "node core"
  return url
}
const fnTotals = new Map()
const areaTotals = new Map()
for (const [id, count] of self) {
  const { callFrame } = byId.get(id)
  const name = `${callFrame.functionName || "(anonymous)"}  ${where(callFrame.url)}:${callFrame.lineNumber + 1}`
  fnTotals.set(name, (fnTotals.get(name) ?? 0) + count)
  const area = callFrame.functionName === "(idle)" ? "(idle)" : callFrame.functionName === "(garbage collector)" ? "(garbage collector)" : where(callFrame.url)
  areaTotals.set(area, (areaTotals.get(area) ?? 0) + count)
}
const pct = (c) => `${((100 * c) / total).toFixed(1).padStart(5)} %`
console.log(`${file}: ${total} samples, ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s`)
console.log("\nby area (self time):")
for (const [k, c] of [...areaTotals].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`  ${pct(c)}  ${k}`)
console.log(`\nby function (self time), top ${n}:`)
for (const [k, c] of [...fnTotals].sort((a, b) => b[1] - a[1]).slice(0, Number(n))) console.log(`  ${pct(c)}  ${k}`)
