import { createReadStream, createWriteStream, renameSync, rmSync } from "node:fs"
import { once } from "node:events"
import type { Writable } from "node:stream"
import { nameProblem } from "../protocol/names.ts"
import { ExitCode, type Spec, UsageError, parse, usage } from "./options.ts"

/**
 * `bulletin export` / `bulletin import`: one server's store as JSON lines
 * (src/store/snapshot.ts has the format), and back into an empty folder.
 *
 * Export opens the LMDB environment read-only and reads everything in one
 * read transaction: a consistent snapshot of a live server, which it does not
 * disturb (no LOCK taken: LMDB shares an environment among readers of any
 * process). Only the op log is exported; history, indexes and request ids are
 * derived again on import, by the Store, as replication would derive them.
 * Not exported: OWNER and LOCK (whose folder it is, who runs on it), the
 * Lamport lease (the header records it), the cluster key (never in the data
 * folder).
 */
export const exportSpec: Spec = {
  data: { env: "DATA_DIR", help: "the server's data folder (read-only; the server may be running)" },
  out: { default: "-", help: "write the snapshot to this file (readable by its owner only: it holds password hashes); '-': stdout" },
}

export const importSpec: Spec = {
  data: { env: "DATA_DIR", help: "the data folder to create (absent or empty)" },
  in: { default: "-", help: "read the snapshot from this file; '-': stdin" },
  // Not BULLETIN_NAME (a server's own name, in its container's environment): the new owner is always said on purpose.
  name: { env: "BULLETIN_IMPORT_NAME", help: "the server that will own the folder (writes OWNER): a NEW name, not the exported server's (see --same-server)" },
  "same-server": { boolean: true, help: "restore the exported server itself (--name is its name): safe only if it then catches up from peers that hold its later ops; also restores its Lamport lease" },
}

/** `bulletin completion` reads one spec per command module: both commands' flags. */
export const spec: Spec = { ...exportSpec, ...importSpec }

/** Writes a chunk, waiting for the stream to drain when its buffer is full (bounded memory), failing on its error. */
const write = (out: Writable, chunk: string) =>
  new Promise<void>((resolve, reject) => {
    if (out.write(chunk)) return resolve()
    const settle = (e?: Error) => {
      out.off("drain", drained)
      out.off("error", settle)
      out.off("close", closed)
      if (e === undefined) resolve()
      else reject(e)
    }
    const drained = () => settle()
    const closed = () => settle(new Error("the output was closed"))
    out.once("drain", drained)
    out.once("error", settle)
    out.once("close", closed)
  })

export const runExport = async (argv: ReadonlyArray<string>) => {
  const p = parse(argv, exportSpec)
  if (p.flags.help) {
    console.log(usage("export", "a consistent snapshot of one server's store as JSON lines (a header, one line per op, an end line); the server may be running", exportSpec))
    process.exit(0)
  }
  if (p.values.data === undefined) throw new UsageError("export needs --data DIR (the server's data folder)")
  if (p.rest.length > 0) throw new UsageError(`export takes no arguments, got '${p.rest[0]}'`)
  const { snapshotLines } = await import("../store/snapshot.ts")
  const toFile = p.values.out !== "-"
  const target = p.values.out!
  const partial = `${target}.partial-${process.pid}`
  const out: Writable = toFile ? createWriteStream(partial, { mode: 0o600 }) : process.stdout
  const started = performance.now()
  let ops = 0
  let header: { server: string | null; origins: Record<string, unknown> } | undefined
  try {
    let buffer = ""
    for await (const line of snapshotLines(p.values.data)) {
      if (header === undefined) header = JSON.parse(line) as typeof header
      else ops += 1
      buffer += `${line}\n`
      if (buffer.length >= 1 << 16) {
        await write(out, buffer)
        buffer = ""
      }
    }
    ops -= 1 // the end line
    await write(out, buffer)
    if (toFile) {
      out.end()
      await once(out, "finish")
      renameSync(partial, target)
    }
  } catch (e) {
    if (toFile) {
      out.destroy()
      rmSync(partial, { force: true })
    }
    throw new Error(`export of ${p.values.data}: ${(e as Error).message}`)
  }
  const seconds = (performance.now() - started) / 1000
  console.error(`export: ${ops} ops of ${Object.keys(header?.origins ?? {}).length} origins from ${header?.server ?? "(no owner)"} (${p.values.data}) in ${seconds.toFixed(2)} s${toFile ? ` to ${target}` : ""}`)
  if (!toFile) process.stdout.write("", () => process.exit(ExitCode.ok))
}

export const runImport = async (argv: ReadonlyArray<string>) => {
  const p = parse(argv, importSpec)
  if (p.flags.help) {
    console.log(usage("import", "restore a `bulletin export` snapshot into an empty data folder (all of it or nothing)", importSpec))
    process.exit(0)
  }
  if (p.values.data === undefined) throw new UsageError("import needs --data DIR (an absent or empty folder)")
  if (p.rest.length > 0) throw new UsageError(`import takes no arguments, got '${p.rest[0]}'`)
  const name = p.values.name
  if (name !== undefined && nameProblem(name) !== undefined) throw new UsageError(`--name: a server name ${nameProblem(name)}`)
  const sameServer = p.flags["same-server"] === true
  if (sameServer && name === undefined) throw new UsageError("--same-server needs --name (the exported server's name)")
  const fromStdin = p.values.in === "-"
  if (fromStdin && process.stdin.isTTY) throw new UsageError("import reads the snapshot from stdin: pipe it in, or give --in FILE")
  const { emptyOrAbsent, importSnapshot, linesOf, checkHeader } = await import("../store/snapshot.ts")
  const empty = emptyOrAbsent(p.values.data)
  if (!empty.ok) {
    console.error(`bulletin import: ${empty.why}`)
    process.exit(ExitCode.failure)
  }
  const input = fromStdin ? process.stdin : createReadStream(p.values.in!)
  const started = performance.now()
  let lines = linesOf(input)
  // The header first: the name check needs it before anything is written.
  const fail = (m: string) => {
    console.error(`bulletin import: ${m}`)
    process.exit(ExitCode.failure)
  }
  let first: IteratorResult<{ readonly n: number; readonly text: string }>
  try {
    first = await lines.next()
  } catch (e) {
    return fail(`${(e as Error).message}; nothing written`)
  }
  if (first.done) return fail("empty input: no snapshot header")
  let header: ReturnType<typeof checkHeader>
  try {
    header = checkHeader(first.value.text)
  } catch (e) {
    return fail(`${(e as Error).message}; nothing written`)
  }
  if (name === undefined) return fail("import needs --name NAME: the server that will own the folder (a new name; --same-server with the exported server's name to restore it)")
  if (!sameServer && name !== header.server && Object.hasOwn(header.origins, name)) {
    return fail(`--name ${name}: the snapshot holds ops of ${name} as an origin. A new server numbering its own ops as ${name} would collide with the real ${name}'s (replicas would skip one side as duplicates). Give a name no server has had`)
  }
  if (name === header.server && !sameServer) {
    return fail(
      `--name ${name} is the exported server itself. A NEW server must not number ops as an origin that exists (its seq would restart below what ${name} already sent, and replicas would skip the new ops as duplicates). Give a new name, or --same-server to restore ${name} itself (then start it where it can catch up from peers first)`,
    )
  }
  if (sameServer && name !== header.server) return fail(`--same-server: the snapshot is of '${header.server ?? "(no owner)"}', not '${name}'`)
  const rest = lines
  lines = (async function* () {
    yield first.value
    yield* rest
  })()
  try {
    const r = await importSnapshot(lines, p.values.data, { name, lease: sameServer })
    const seconds = (performance.now() - started) / 1000
    console.log(`import: ${r.ops} ops of ${Object.keys(r.header.origins).length} origins (a snapshot of ${r.header.server ?? "(no owner)"} taken ${r.header.exportedAt}) into ${p.values.data} in ${seconds.toFixed(2)} s`)
    console.log(
      name === undefined
        ? `import: the folder has no owner yet: the first server started on it claims it. Start a NEW server name on it (bulletin server --name NAME --data ${p.values.data}), not ${r.header.server ?? "the exported server"}`
        : `import: the folder belongs to ${name}: bulletin server --name ${name} --data ${p.values.data}`,
    )
  } catch (e) {
    return fail(`${(e as Error).message}; nothing written`)
  }
}
