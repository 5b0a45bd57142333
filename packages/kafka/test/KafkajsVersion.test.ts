// The patch replaces kafkajs internals written for one release. Installed beside another kafkajs
// (a copy of the real one whose package.json names another version), it skips those patches,
// says so in one warning line, and still loads.
import { spawnSync } from "node:child_process"
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"

const require = createRequire(import.meta.url)
const kafkajsDir = dirname(require.resolve("kafkajs/package.json"))
const src = join(import.meta.dirname, "..", "src")
const dir = mkdtempSync(join(tmpdir(), "orbit-kafkajs-version-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Loads the patch next to a kafkajs whose package.json says `version`; returns what it reports and its warning lines. */
const loadWith = (version: string) => {
  const root = join(dir, version)
  cpSync(kafkajsDir, join(root, "node_modules", "kafkajs"), { recursive: true })
  const pkg = join(root, "node_modules", "kafkajs", "package.json")
  writeFileSync(pkg, JSON.stringify({ ...JSON.parse(readFileSync(pkg, "utf8")), version }))
  for (const file of ["KafkajsPatch.ts", "Crc32c.ts", "GroupMessagesPerPartition.ts", "RejoinAsSameMember.ts", "SendMessages.ts", "Varint.ts", "PooledEncoder.ts"]) {
    cpSync(join(src, file), join(root, "src", file))
  }
  writeFileSync(join(root, "package.json"), JSON.stringify({ type: "module" }))
  writeFileSync(
    join(root, "src", "probe.ts"),
    `import { internalPatchesInstalled } from "./KafkajsPatch.ts"
import { createRequire } from "node:module"
const require = createRequire(import.meta.url)
const crc = require("kafkajs/src/protocol/recordBatch/crc32C/index.js")
process.stdout.write(JSON.stringify({ internalPatchesInstalled, crcReplaced: Object.getOwnPropertySymbols(crc).length > 0 }))
`
  )
  const run = spawnSync(process.execPath, [join(root, "src", "probe.ts")], { encoding: "utf8" })
  const warnings = run.stderr.split("\n").filter((line) => line.includes("internal patches"))
  return { report: JSON.parse(run.stdout) as { internalPatchesInstalled: boolean; crcReplaced: boolean }, warnings }
}

describe("KafkajsPatch and the kafkajs version", () => {
  it("installs its patches on the version they were written for, silently", () => {
    const { report, warnings } = loadWith("2.2.4")
    expect(report).toEqual({ internalPatchesInstalled: true, crcReplaced: true })
    expect(warnings).toEqual([])
  }, 30_000)

  it("skips them on another version, with one warning", () => {
    const { report, warnings } = loadWith("2.2.5")
    expect(report).toEqual({ internalPatchesInstalled: false, crcReplaced: false })
    expect(warnings).toHaveLength(1)
    expect(JSON.parse(warnings[0]!)).toMatchObject({ level: "WARN", logger: "@orbit/kafka" })
  }, 30_000)
})
