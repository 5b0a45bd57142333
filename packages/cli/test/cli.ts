import { spawn } from "node:child_process"
import { join } from "node:path"

export const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

const MAIN = join(import.meta.dirname, "..", "src", "main.ts")

export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs the CLI as `npm run orbit -- <args>` does (`node packages/cli/src/main.ts`), as its own process. */
export const orbit = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<CliResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d))
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d))
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })

export interface LiveCli {
  /** Resolves with the first stdout line matching `pattern` (already printed or still to come). */
  line(pattern: RegExp): Promise<string>
  /** Resolves once stderr has printed a line matching `pattern`. */
  stderrLine(pattern: RegExp): Promise<string>
  readonly stdoutLines: ReadonlyArray<string>
  /** Sends SIGINT (Ctrl-C) and resolves with the exit code. */
  interrupt(): Promise<number | null>
  readonly exited: Promise<number | null>
}

/** Runs a long-lived command (`tail`) as its own process and follows its output line by line. */
export const orbitLive = (args: ReadonlyArray<string>, env: Record<string, string> = {}): LiveCli => {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
  const streams = { stdout: { lines: [] as Array<string>, partial: "" }, stderr: { lines: [] as Array<string>, partial: "" } }
  const waiters: Array<{ stream: "stdout" | "stderr"; pattern: RegExp; resolve: (line: string) => void }> = []
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)))
  for (const name of ["stdout", "stderr"] as const) {
    child[name].setEncoding("utf8").on("data", (d: string) => {
      const s = streams[name]
      const parts = (s.partial + d).split("\n")
      s.partial = parts.pop()!
      for (const line of parts) {
        s.lines.push(line)
        for (const w of waiters.filter((w) => w.stream === name && w.pattern.test(line))) {
          waiters.splice(waiters.indexOf(w), 1)
          w.resolve(line)
        }
      }
    })
  }
  const wait = (stream: "stdout" | "stderr", pattern: RegExp) => {
    const seen = streams[stream].lines.find((l) => pattern.test(l))
    if (seen !== undefined) return Promise.resolve(seen)
    return Promise.race([
      new Promise<string>((resolve) => waiters.push({ stream, pattern, resolve })),
      exited.then((code) => {
        throw new Error(`orbit ${args.join(" ")} exited (${code}) before printing ${pattern} on ${stream}; stderr:\n${streams.stderr.lines.join("\n")}`)
      })
    ])
  }
  return {
    line: (pattern) => wait("stdout", pattern),
    stderrLine: (pattern) => wait("stderr", pattern),
    get stdoutLines() {
      return streams.stdout.lines
    },
    interrupt: () => {
      child.kill("SIGINT")
      return exited
    },
    exited
  }
}
