import { type ChildProcess, spawn } from "node:child_process"
import { once } from "node:events"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"

const FIXTURE = join(import.meta.dirname, "fixtures", "hang-on-stop.ts")

// A fixture still running after a failed test (its watchdog broken) is killed, not left behind.
const children: Array<ChildProcess> = []
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
})

/** Starts the fixture, waits for `up`, sends SIGTERM; resolves with its exit code and stdout. */
const stopHangingService = async (env: Record<string, string>) => {
  const child = spawn(process.execPath, [FIXTURE], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
  children.push(child)
  let stdout = ""
  child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()))
  await new Promise<void>((resolve) => child.stderr!.on("data", (c: Buffer) => c.toString().includes("up") && resolve()))
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>
  child.kill("SIGTERM")
  const [code] = await exited
  return { code, stdout }
}

describe("runService's shutdown watchdog", () => {
  it("ends a close that never finishes with one ERROR line and exit code 1", async () => {
    const { code, stdout } = await stopHangingService({ ORBIT_SHUTDOWN_TIMEOUT_MS: "300" })
    expect(code).toBe(1)
    const errors = stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l)).filter((l) => l.level === "ERROR")
    expect(errors).toHaveLength(1)
    expect(errors[0].message).toBe("hangs did not stop within 300 ms of the stop signal (ORBIT_SHUTDOWN_TIMEOUT_MS); exiting without finishing the close")
  }, 20_000)
})
