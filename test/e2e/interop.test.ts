import { execFile } from "node:child_process"
import { resolve } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Cluster, startCluster, stopAll } from "../support/procs.ts"

// Debian's python3 with python3-zmq and python3-msgpack (installed by scripts/setup.sh).
const python = "/usr/bin/python3"
const script = resolve(import.meta.dirname, "../interop/standard_client.py")
let cluster: Cluster

beforeAll(async () => {
  cluster = await startCluster("127.81.2.1", 3)
})
afterAll(stopAll)

describe("a client written from PROTOCOL.md in Python", () => {
  it("uses every standard service, with the real peers' quirks", async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((done) =>
      execFile(python, [script, cluster.brokerFrontend, cluster.proxyBackend, "1"], { timeout: 60_000 }, (err, stdout, stderr) =>
        done({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr }),
      ),
    )
    const checks = stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as { check: string; ok: boolean; detail: unknown })
    const failed = checks.filter((c) => !c.ok)
    expect(stderr, "the Python client crashed (are python3-zmq and python3-msgpack installed? run scripts/setup.sh)").toBe("")
    expect(failed).toEqual([])
    expect(checks.length).toBeGreaterThanOrEqual(17)
    expect(code).toBe(0)
  })
})
