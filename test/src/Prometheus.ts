/**
 * Debian's `prometheus` binary run for a test: the checked-in scrape configuration
 * (`infra/observability/prometheus.yml`, with its alert rules) pointed at a test platform's
 * ports, scraping and evaluating rules every second, on a free loopback port, with its data in a
 * temporary directory removed on `close()`. Queries go through its HTTP API.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { once } from "node:events"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { freePort } from "./freePort.ts"

/** The operator's kit: scrape config, alert rules, their promtool tests, the Grafana dashboard. */
export const OBSERVABILITY_DIR = fileURLToPath(new URL("../../infra/observability/", import.meta.url))

export const PROMETHEUS = process.env.PROMETHEUS_PATH ?? "prometheus"
export const PROMTOOL = process.env.PROMTOOL_PATH ?? "promtool"

/** The Prometheus job names of the scrape config, by the service they scrape. */
export const JOBS = {
  registration: "orbit-registration",
  projection: "orbit-projection",
  dispatcher: "orbit-dispatcher"
} as const

/** The `host:port` each job scrapes in the checked-in config (the services' default addresses). */
const DEFAULT_TARGETS = {
  registration: "127.0.0.1:8080",
  projection: "127.0.0.1:9464",
  dispatcher: "127.0.0.1:9465"
} as const

export type Targets = { readonly [K in keyof typeof JOBS]: string }

const replaceOnce = (text: string, from: string, to: string): string => {
  const at = text.indexOf(from)
  if (at < 0 || text.indexOf(from, at + from.length) >= 0) {
    throw new Error(`infra/observability/prometheus.yml: expected ${JSON.stringify(from)} exactly once`)
  }
  return text.slice(0, at) + to + text.slice(at + from.length)
}

/**
 * The checked-in scrape configuration with each job's target replaced by `targets`, the rule file
 * named by its absolute path, and scrapes and rule evaluations every `interval`.
 */
export const scrapeConfigFor = (targets: Targets, interval = "1s"): string => {
  let text = readFileSync(join(OBSERVABILITY_DIR, "prometheus.yml"), "utf8")
  for (const name of Object.keys(JOBS) as Array<keyof typeof JOBS>) {
    text = replaceOnce(text, `"${DEFAULT_TARGETS[name]}"`, JSON.stringify(targets[name]))
  }
  text = replaceOnce(text, "scrape_interval: 15s", `scrape_interval: ${interval}`)
  text = replaceOnce(text, "evaluation_interval: 15s", `evaluation_interval: ${interval}`)
  text = replaceOnce(text, "- alerts.yml", `- ${JSON.stringify(join(OBSERVABILITY_DIR, "alerts.yml"))}`)
  return text
}

/** One sample of an instant query's answer. */
export interface Sample {
  readonly metric: Record<string, string>
  readonly value: number
}

export interface RunningPrometheus {
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /** An instant query through `/api/v1/query`; rejects with Prometheus's error for a bad query. */
  query(expr: string): Promise<ReadonlyArray<Sample>>
  /** GET `/api/v1/<path>`'s `data`, rejecting on an error status. */
  api<A = unknown>(path: string): Promise<A>
  /** Prometheus's own output so far, for failure messages. */
  readonly output: Array<string>
  close(): Promise<void>
}

/** Starts `prometheus` on `config` (YAML text) and resolves once it answers `/-/ready`. */
export const startPrometheus = async (config: string): Promise<RunningPrometheus> => {
  const dir = mkdtempSync(join(tmpdir(), "orbit-prometheus-"))
  const configFile = join(dir, "prometheus.yml")
  writeFileSync(configFile, config)
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const output: Array<string> = []
  const child: ChildProcess = spawn(PROMETHEUS, [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${join(dir, "data")}`,
    `--web.listen-address=127.0.0.1:${port}`,
    "--log.level=warn"
  ], { stdio: ["ignore", "pipe", "pipe"] })
  const collect = (chunk: Buffer) => output.push(...chunk.toString().split("\n").filter(Boolean))
  child.stdout!.on("data", collect)
  child.stderr!.on("data", collect)
  // A binary that cannot be started (not installed) fails the start with its spawn error.
  const spawnError = new Promise<never>((_, reject) => child.once("error", reject))
  spawnError.catch(() => undefined)
  // (once() also settles on "error", so a spawn failure leaves nothing unhandled.)
  const exited = once(child, "exit").catch(() => undefined)

  const close = async () => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM")
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  }

  const api = async <A>(path: string): Promise<A> => {
    const res = await fetch(`${url}/api/v1/${path}`, { signal: AbortSignal.timeout(10_000) })
    const body = await res.json() as { status: string; data: A; error?: string; errorType?: string }
    if (body.status !== "success") throw new Error(`prometheus ${path}: ${body.errorType}: ${body.error}`)
    return body.data
  }

  const query = async (expr: string): Promise<ReadonlyArray<Sample>> => {
    const data = await api<{ resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> }>(
      `query?query=${encodeURIComponent(expr)}`
    )
    if (data.resultType !== "vector") throw new Error(`prometheus query ${expr}: a ${data.resultType}, not a vector`)
    return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }))
  }

  try {
    const deadline = Date.now() + 60_000
    for (;;) {
      const ready = await Promise.race([
        spawnError,
        fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(5_000) }).then((r) => r.ok, () => false)
      ])
      if (ready) break
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`prometheus did not become ready (exit code ${child.exitCode})\n${output.slice(-20).join("\n")}`)
      }
      await new Promise((r) => setTimeout(r, 100))
    }
  } catch (error) {
    await close()
    throw error
  }
  return { url, query, api, output, close }
}
