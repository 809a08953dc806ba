#!/usr/bin/env node
// `npm run build`: compiles src/ and bench/ to dist/ (tsc, .ts imports
// rewritten to .js), copies the dashboard's static files beside their
// module, and stamps dist/.built with the time the build STARTED: a source
// saved during the build is newer than the stamp, so bin/bulletin.js will not
// run the stale output. `--if-stale`: build only if some source is newer
// than the stamp (what setup runs; `npm ci` has run `prepare` already).
import { execFileSync } from "node:child_process"
import { cpSync, mkdirSync, rmSync, utimesSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { builtAndFresh } from "../bin/fresh.mjs"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
if (process.argv.includes("--if-stale") && builtAndFresh(root)) process.exit(0)
const started = new Date()
rmSync(join(root, "dist", ".built"), { force: true })
const tsc = join(root, "node_modules", "typescript", "bin", "tsc")
execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" })
cpSync(join(root, "src", "dashboard", "static"), join(root, "dist", "src", "dashboard", "static"), { recursive: true })
mkdirSync(join(root, "dist"), { recursive: true })
writeFileSync(join(root, "dist", ".built"), `${started.toISOString()}\n`)
utimesSync(join(root, "dist", ".built"), started, started)
