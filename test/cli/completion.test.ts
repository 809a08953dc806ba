import { execFileSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { beforeAll, describe, expect, it } from "vitest"
import { bin } from "../support/procs.ts"

/**
 * `bulletin completion bash`: the script the command prints, sourced in a
 * real bash and asked what it completes (as bash's programmable completion
 * would: COMP_WORDS, COMP_CWORD, COMP_LINE set, then the function called).
 */
let script: string
beforeAll(() => {
  const out = execFileSync(process.execPath, [bin, "completion", "bash"], { encoding: "utf8", env: { ...process.env, BULLETIN_CONFIG: "" } })
  script = join(mkdtempSync(join(tmpdir(), "bulletin-completion-")), "bulletin.bash")
  writeFileSync(script, out)
}, 60_000)

const complete = (line: string): Array<string> => {
  const program = `
source ${JSON.stringify(script)}
COMP_LINE=${JSON.stringify(line)}
COMP_POINT=\${#COMP_LINE}
read -ra COMP_WORDS <<< "$COMP_LINE"
[[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((\${#COMP_WORDS[@]} - 1))
_bulletin bulletin "\${COMP_WORDS[-1]}" "\${COMP_WORDS[-2]}"
printf '%s\\n' "\${COMPREPLY[@]}"`
  return execFileSync("bash", ["-c", program], { encoding: "utf8", cwd: tmpdir() }).split("\n").filter((l) => l !== "")
}

describe("bulletin completion bash", () => {
  it("completes commands", () => {
    expect(complete("bulletin st")).toEqual(["status"])
    expect(complete("bulletin ")).toEqual(expect.arrayContaining(["up", "client", "server", "status", "health", "completion"]))
  })

  it("completes every command's flags, from the spec it parses with", () => {
    expect(complete("bulletin up --se")).toEqual(["--servers", "--server-ip-base"])
    expect(complete("bulletin server --bro")).toEqual(["--broker"])
    expect(complete("bulletin client --")).toEqual(expect.arrayContaining(["--broker", "--proxy", "--user", "--json", "--log-level", "--help"]))
    for (const command of ["up", "client", "broker", "proxy", "reference", "server", "bot", "keygen", "sim", "monitor", "dashboard", "inspector", "health", "status", "sub", "export", "import", "bench"]) {
      const flags = complete(`bulletin ${command} --`)
      expect(flags.filter((f) => !["--log-level", "--log-format", "--config", "--help"].includes(f)).length, `${command}: ${flags.join(" ")}`).toBeGreaterThan(0)
    }
  })

  it("completes values: choices, and folders for a folder", () => {
    expect(complete("bulletin health ")).toEqual(["broker", "proxy", "reference", "server", "dashboard", "bot", "client"])
    expect(complete("bulletin up --log-level d")).toEqual(["debug"])
    expect(complete("bulletin completion z")).toEqual(["zsh"])
    expect(complete(`bulletin up --data-root ${tmpdir().slice(0, -1)}`)).toContain(tmpdir())
  })

  it("zsh and fish scripts too; an unknown shell is a usage error", () => {
    const zsh = execFileSync(process.execPath, [bin, "completion", "zsh"], { encoding: "utf8" })
    expect(zsh.startsWith("#compdef bulletin")).toBe(true)
    expect(zsh).toContain("--data-root")
    let code = 0
    try {
      execFileSync(process.execPath, [bin, "completion", "tcsh"], { stdio: "pipe" })
    } catch (e) {
      code = (e as { status: number }).status
    }
    expect(code).toBe(2)
  })
})
