import { existsSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

/**
 * The package's root folder (the one with package.json) seen from a module:
 * the same whether the module runs from src/ (tsx) or from dist/src/ (built).
 */
export const packageRoot = (moduleUrl: string): string => {
  let dir = dirname(fileURLToPath(moduleUrl))
  for (;;) {
    if (existsSync(join(dir, "package.json"))) return dir
    const up = dirname(dir)
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(moduleUrl)}`)
    dir = up
  }
}
