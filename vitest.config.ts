import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // End-to-end files start real processes; two at a time on two cores.
    maxWorkers: 2,
    reporters: ["default"],
  },
})
