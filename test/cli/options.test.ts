import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { type Spec, UsageError, configPath, envNames, loadConfig, parse, parseConfig } from "../../src/cli/options.ts"
import { spec as upSpec } from "../../src/cli/up.ts"
import { specs as roleSpecs } from "../../src/cli/roles.ts"

const commands = ["up", "client", "server", "bot", "status"]
const spec: Spec = {
  broker: { env: "BROKER_ADDR", default: "127.0.0.1", help: "broker host" },
  "bot-rate": { default: "2", help: "posts per second" },
  key: { env: "BULLETIN_KEY_FILE", help: "key file" },
  open: { boolean: true, env: "BULLETIN_OPEN", help: "open mode" },
  "data-root": { env: "DATA_ROOT", aliases: ["data"], default: "data", help: "root" },
}

const saved = { ...process.env }
afterEach(() => {
  for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k]
  Object.assign(process.env, saved)
  process.env.BULLETIN_CONFIG = ""
  loadConfig("client", commands)
})

const withConfig = (command: string, text: string) => {
  const file = join(mkdtempSync(join(tmpdir(), "bulletin-config-")), "config")
  writeFileSync(file, text)
  process.env.BULLETIN_CONFIG = file
  loadConfig(command, commands)
  return file
}

describe("environment variables", () => {
  it("every flag has a BULLETIN_ name, the older name after it, a BULLETIN_ name kept as it is", () => {
    expect(envNames("bot-rate", spec["bot-rate"]!)).toEqual(["BULLETIN_BOT_RATE"])
    expect(envNames("broker", spec.broker!)).toEqual(["BULLETIN_BROKER", "BROKER_ADDR"])
    expect(envNames("key", spec.key!)).toEqual(["BULLETIN_KEY_FILE"])
  })

  it("flag over BULLETIN_ over the older name over the default", () => {
    process.env.BULLETIN_CONFIG = ""
    loadConfig("client", commands)
    expect(parse([], spec).values.broker).toBe("127.0.0.1")
    process.env.BROKER_ADDR = "old"
    expect(parse([], spec).values.broker).toBe("old")
    process.env.BULLETIN_BROKER = "new"
    expect(parse([], spec).values.broker).toBe("new")
    expect(parse(["--broker", "flag"], spec).values.broker).toBe("flag")
    process.env.BULLETIN_BOT_RATE = "9"
    expect(parse([], spec).values["bot-rate"]).toBe("9")
  })

  it("booleans from the environment: 1/true/yes/on set, 0/false/no/off clear", () => {
    process.env.BULLETIN_CONFIG = ""
    loadConfig("client", commands)
    for (const [v, want] of [["1", true], ["true", true], ["on", true], ["0", false], ["false", false], ["no", false], ["", false]] as const) {
      process.env.BULLETIN_OPEN = v
      expect(parse([], spec).flags.open, v).toBe(want)
    }
  })

  it("older flag names still work (up --data is --data-root)", () => {
    expect(parse(["--data", "/x"], spec).values["data-root"]).toBe("/x")
    expect(parse(["--data-root", "/y"], spec).values["data-root"]).toBe("/y")
  })

  it("DATA_DIR means one server's folder only: up's root is --data-root (BULLETIN_DATA_ROOT, DATA_ROOT), the same setting as the server's", () => {
    const up = upSpec["data-root"]!
    const server = roleSpecs.server["data-root"]!
    expect(envNames("data-root", up)).toEqual(envNames("data-root", server))
    expect(envNames("data-root", up)).not.toContain("DATA_DIR")
    expect(upSpec.data).toBeUndefined()
    expect(envNames("data", roleSpecs.server.data!)).toEqual(["BULLETIN_DATA", "DATA_DIR"])
  })
})

describe("the config file", () => {
  it("top settings apply to every command that has the flag, a section's to its command and win; env and flags win over both", () => {
    withConfig("client", "# a comment\nbroker = 10.0.0.5   # trailing comment\nbot-rate = 3\n\n[client]   # a comment here too\nbroker = 10.0.0.6\n[bot]\nbot-rate = 7\n")
    expect(parse([], spec).values.broker).toBe("10.0.0.6")
    expect(parse([], spec).values["bot-rate"]).toBe("3")
    withConfig("bot", "broker = 10.0.0.5\n[bot]\nbot-rate = 7\n")
    expect(parse([], spec).values.broker).toBe("10.0.0.5")
    expect(parse([], spec).values["bot-rate"]).toBe("7")
    process.env.BROKER_ADDR = "env"
    expect(parse([], spec).values.broker).toBe("env")
    expect(parse(["--broker", "flag"], spec).values.broker).toBe("flag")
  })

  it("booleans and quoted values", () => {
    withConfig("client", 'open = true\nkey = "/a b/#c"\n')
    const p = parse([], spec)
    expect(p.flags.open).toBe(true)
    expect(p.values.key).toBe("/a b/#c")
  })

  it("says where a mistake is: a section no command has, a setting the command has not, a line that is not a setting", () => {
    expect(() => withConfig("client", "[clinet]\nuser = ana\n")).toThrow(/config:1: no command 'clinet'; did you mean \[client\]\?/)
    withConfig("client", "broker = x\n[client]\nbrokr = y\n")
    expect(() => parse([], spec)).toThrow(/config:3: \[client\] has no setting 'brokr'; did you mean 'broker'\?/)
    expect(() => withConfig("client", "just words\n")).toThrow(UsageError)
    expect(() => withConfig("client", "just words\n")).toThrow(/config:1: expected 'flag = value'/)
  })

  it("an explicit file that is not there is an error; the default one may be missing; BULLETIN_CONFIG= means none", () => {
    process.env.BULLETIN_CONFIG = "/nonexistent/bulletin.conf"
    expect(() => loadConfig("client", commands)).toThrow(/no such file/)
    expect(configPath({ XDG_CONFIG_HOME: "/x" })).toEqual({ path: "/x/bulletin/config", explicit: false })
    expect(loadConfig("client", commands, { XDG_CONFIG_HOME: "/nonexistent" })).toBeUndefined()
    expect(configPath({ BULLETIN_CONFIG: "" })).toBeUndefined()
  })

  it("is bounded", () => {
    expect(() => parseConfig("f", "a = 1\n".repeat(20_000), commands)).toThrow(/more than/)
  })
})
