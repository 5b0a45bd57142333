/**
 * `npm start` on a machine without Java or Maven stops at once with one line
 * naming the Debian package to install. The real start script runs with a PATH that lacks the
 * tool, and a broker port where nothing answers, so it has to start a broker of its own.
 */
import { execFile } from "node:child_process"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { generateKeyRing } from "@orbit/crypto"
import { afterAll, describe, expect, it } from "vitest"
import { freePort } from "../src/freePort.ts"

const ROOT = path.join(import.meta.dirname, "..", "..")
const bins: Array<string> = []

afterAll(() => {
  for (const dir of bins) fs.rmSync(dir, { recursive: true, force: true })
})

/** Where a command lives on this machine's PATH. */
const which = (command: string) =>
  (process.env.PATH ?? "").split(path.delimiter).map((dir) => path.join(dir, command)).find((p) => fs.existsSync(p))

/** A PATH of one folder holding only node and the named commands (symlinks to the real ones). */
const pathWith = (commands: ReadonlyArray<string>) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "orbit-path-"))
  bins.push(dir)
  fs.symlinkSync(process.execPath, path.join(dir, "node"))
  for (const command of commands) fs.symlinkSync(which(command)!, path.join(dir, command))
  return dir
}

const npmStart = async (PATH: string) => {
  const { KAFKA_BROKERS: _brokers, ...env } = process.env
  const kafkaPort = await freePort()
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [path.join(ROOT, "infra", "start.ts")], {
      cwd: ROOT,
      timeout: 60_000,
      env: {
        ...env,
        PATH,
        KAFKA_PORT: String(kafkaPort),
        ORBIT_EMBEDDED_POSTGRES: "never",
        ORBIT_SECRET_KEYS: generateKeyRing("test1")
      }
    }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr })
    })
  })
}

describe("npm start without the broker's tools", () => {
  it("without java: exits 1 with one line naming openjdk-17-jre-headless", async () => {
    const r = await npmStart(pathWith(["mvn"]))
    expect(r).toEqual({
      code: 1,
      stdout: "",
      stderr: "[kafka] `java` not found on PATH: the local Kafka broker needs Java 17+ (Kafka runs on it). " +
        "Install it with: sudo apt-get install openjdk-17-jre-headless (or set KAFKA_BROKERS to use another broker)\n"
    })
  }, 60_000)

  it("without mvn: exits 1 with one line naming maven", async () => {
    const r = await npmStart(pathWith(["java"]))
    expect(r).toEqual({
      code: 1,
      stdout: "",
      stderr: "[kafka] `mvn` not found on PATH: the local Kafka broker needs Maven (it fetches the Kafka jars). " +
        "Install it with: sudo apt-get install maven (or set KAFKA_BROKERS to use another broker)\n"
    })
  }, 60_000)
})
