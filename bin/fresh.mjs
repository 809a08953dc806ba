// Whether dist/ (from `npm run build`) is newer than every source it was built
// from: src/, bench/ and the build's own configuration. A few hundred stats,
// about a millisecond.
import { readdirSync, statSync } from "node:fs"
import { join } from "node:path"

const newest = (dir) => {
  let max = 0
  let entries
  try {
    entries = readdirSync(dir, { withFileTypes: true })
  } catch {
    return 0
  }
  for (const e of entries) {
    const path = join(dir, e.name)
    const t = e.isDirectory() ? newest(path) : statSync(path).mtimeMs
    if (t > max) max = t
  }
  return max
}

export const builtAndFresh = (root) => {
  let stamp
  try {
    stamp = statSync(join(root, "dist", ".built")).mtimeMs
  } catch {
    return false
  }
  const sources = Math.max(newest(join(root, "src")), newest(join(root, "bench")), ...["tsconfig.json", "tsconfig.build.json", "package.json"].map((f) => statSync(join(root, f), { throwIfNoEntry: false })?.mtimeMs ?? 0))
  return sources <= stamp
}
