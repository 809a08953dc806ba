// Run in the image after `npm prune --omit=dev`: drops what this platform
// never loads. zeromq ships its native addon for every OS and CPU (33 MB);
// effect ships its TypeScript sources and source maps beside the JavaScript.
// Only files nothing imports at run time go; the image's own smoke test
// (the Dockerfile's last RUN) loads zeromq and lmdb afterwards.
import { readdirSync, rmSync, statSync } from "node:fs"
import { join } from "node:path"

const modules = new URL("../../node_modules/", import.meta.url).pathname
let freed = 0
const size = (path) => {
  const s = statSync(path)
  if (!s.isDirectory()) return s.size
  return readdirSync(path).reduce((n, f) => n + size(join(path, f)), 0)
}
const drop = (path) => {
  try {
    freed += size(path)
  } catch {
    return
  }
  rmSync(path, { recursive: true, force: true })
}

const zmqBuild = join(modules, "zeromq/build")
for (const os of readdirSync(zmqBuild, { withFileTypes: true }).filter((d) => d.isDirectory())) {
  if (os.name !== process.platform) drop(join(zmqBuild, os.name))
  else for (const arch of readdirSync(join(zmqBuild, os.name))) if (arch !== process.arch) drop(join(zmqBuild, os.name, arch))
}
drop(join(modules, "effect/src"))
drop(join(modules, "effect/ai-docs"))
const maps = (dir) => {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name)
    if (e.isDirectory()) maps(path)
    else if (e.name.endsWith(".map")) drop(path)
  }
}
maps(modules)
console.log(`slim: ${(freed / 1e6).toFixed(1)} MB of files this platform never loads removed`)
