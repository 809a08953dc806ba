#!/usr/bin/env node
// The `bulletin` command: the compiled JavaScript in dist/ (`npm run build`,
// which setup and `npm install` run) when it is up to date with the sources;
// otherwise (a clone being edited) the sources themselves through tsx's
// loader, slower to start but never stale.
import { fileURLToPath } from "node:url"
import { builtAndFresh } from "./fresh.mjs"

const root = fileURLToPath(new URL("..", import.meta.url))
if (process.env.BULLETIN_FROM_SOURCE !== "1" && builtAndFresh(root)) {
  await import("../dist/src/cli/main.js")
} else {
  const { register } = await import("tsx/esm/api")
  register()
  await import("../src/cli/main.ts")
}
