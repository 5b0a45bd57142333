// Local single-node Kafka (KRaft) for dev and tests, run from the jars Maven
// resolves from Maven Central -- no Docker, no Kafka distribution tarball.
//
//   node infra/kafka.ts start|stop|reset|status
//
// Or import { startKafka, stopKafka, brokers } from another script.
// Env: KAFKA_PORT (default 9092; the controller uses KAFKA_PORT+1), KAFKA_BROKERS (an external
// cluster, comma-separated: start/stop become no-ops; set with KAFKA_PORT it must name the same
// local broker, else start fails naming both; `kafkaBrokers` in @orbit/kafka is the one reading),
// KAFKA_VERSION (override the version pinned in kafka/pom.xml), KAFKA_JVM_OPTS (extra JVM flags).
import { spawn, spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import fs from "node:fs"
import net from "node:net"
import path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { DEFAULT_KAFKA_PORT, Kafka, type KafkaBrokers, kafkaBrokers, logLevel } from "@orbit/kafka"

// Paths are relative to this file, not the cwd: npm workspaces run scripts from many folders.
const INFRA = import.meta.dirname
const POM = path.join(INFRA, "kafka", "pom.xml")
const TEMPLATE = path.join(INFRA, "kafka", "server.properties")
const DATA = path.join(INFRA, ".data")

const HOST = "127.0.0.1"

/** The settings as `kafkaBrokers` reads them; a conflicting pair throws when a command first needs them. */
const where = (): KafkaBrokers => kafkaBrokers(process.env)
const external = (): boolean => where().kind === "external"
/** The local broker's port: KAFKA_PORT, else 9092 (also when KAFKA_BROKERS names an external cluster). */
const port = (): number => {
  const w = where()
  return w.kind === "local" ? w.port : DEFAULT_KAFKA_PORT
}
// Each port has its own files, so brokers on two ports of one checkout never share a log dir or
// pid file; the default port keeps the names earlier checkouts used.
const stem = () => (port() === DEFAULT_KAFKA_PORT ? "kafka" : `kafka-${port()}`)
const LOG_DIR = () => path.join(DATA, stem())
const PROPS = () => path.join(DATA, `${stem()}.properties`)
const LOG_FILE = () => path.join(DATA, `${stem()}.log`)
const PID_FILE = () => path.join(DATA, `${stem()}.pid`)
const VERSION = process.env.KAFKA_VERSION ?? pinnedVersion()
const LIB = path.join(INFRA, ".kafka", `lib-${VERSION}`)
// AppCDS archive: the first broker run records the classes it loaded when it exits cleanly
// (via stop); later starts map it instead of parsing the jars again, which starts the broker faster.
const CDS = path.join(LIB, "kafka.jsa")
const CDS_TMP = `${CDS}.tmp` // renamed to CDS only after a clean exit, so a torn dump is never used

// Small heap and SerialGC: a dev broker on a 2-core box; SerialGC starts faster than G1.
// C1 only (no C2): on 2 cores the C2 compiler thread took half a core for the first minutes of
// every broker start, competing with the services under test; C1 alone is ready sooner and keeps
// the delivery latency of a freshly started broker low (docs/BENCHMARKS.md, "Kafka broker start-up").
const JVM_OPTS = [
  "-Xms256m",
  "-Xmx512m",
  "-XX:+UseSerialGC",
  "-XX:TieredStopAtLevel=1",
  "-XX:+ExitOnOutOfMemoryError",
  "-Djava.awt.headless=true",
  // slf4j-simple (see pom.xml) with timestamps.
  "-Dorg.slf4j.simpleLogger.showDateTime=true",
  "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
  // Tests create many topics; these log several INFO lines per partition (MBs per test run).
  ...[
    "state.change.logger",
    "kafka.cluster.Partition",
    "org.apache.kafka.storage.internals.log",
    "org.apache.kafka.controller.ReplicationControlManager",
    "org.apache.kafka.controller.ConfigurationControlManager",
    "kafka.server.metadata.DynamicConfigPublisher",
    "org.apache.kafka.common.config",
    "org.apache.kafka.common.utils.AppInfoParser",
  ].map((logger) => `-Dorg.slf4j.simpleLogger.log.${logger}=warn`),
  ...(process.env.KAFKA_JVM_OPTS?.split(/\s+/).filter(Boolean) ?? []), // e.g. a bigger heap for benchmarks
]

const READY_TIMEOUT_MS = 60_000
const STOP_TIMEOUT_MS = 30_000

const say = (msg: string) => console.log(`[kafka] ${msg}`)

/** Bootstrap servers for clients: KAFKA_BROKERS if set, else the local broker on KAFKA_PORT. */
export function brokers(): string[] {
  return [...where().brokers]
}

/** True if a Kafka broker answers a metadata request on brokers(). */
export async function isKafkaUp(): Promise<boolean> {
  const [host, port] = splitHostPort(brokers()[0] ?? "")
  if (!(await tcpOpen(host, port))) return false
  const admin = new Kafka({
    clientId: "orbit-infra-probe",
    brokers: brokers(),
    connectionTimeout: 1000,
    requestTimeout: 2000,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  }).admin()
  try {
    await admin.connect()
    await admin.describeCluster()
    return true
  } catch {
    return false
  } finally {
    await admin.disconnect().catch(() => {})
  }
}

export type StartResult = {
  brokers: string[]
  /** external: KAFKA_BROKERS is set; running: was already up; started: we launched it. */
  state: "external" | "running" | "started"
  ms: number
}

/** Ensure a broker is answering; downloads jars / formats storage / launches it as needed. */
export async function startKafka(): Promise<StartResult> {
  const t0 = performance.now()
  const done = (state: StartResult["state"]): StartResult => ({
    brokers: brokers(),
    state,
    ms: Math.round(performance.now() - t0),
  })

  if (external()) {
    say(`KAFKA_BROKERS is set, using external broker(s): ${brokers().join(",")}`)
    return done("external")
  }
  if (await isKafkaUp()) {
    say(`already running on ${brokers()[0]}`)
    return done("running")
  }

  requireTools()

  // A previous `start` may still be booting (e.g. two callers at once): wait for it instead.
  let pid = ourBrokerPid()
  if (pid === undefined) {
    if (await tcpOpen(HOST, port())) {
      throw new Error(`port ${port()} is in use by something that is not a Kafka broker`)
    }
    resolveJars()
    writeProps()
    formatStorage()
    pid = launch()
    say(`launched Kafka ${VERSION} (pid ${pid}), waiting for it to answer on ${brokers()[0]}...`)
  } else {
    say(`broker pid ${pid} is already starting, waiting for it...`)
  }

  const deadline = Date.now() + READY_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (!alive(pid)) throw new Error(`Kafka exited during startup. Log tail:\n${logTail()}`)
    if (await isKafkaUp()) {
      const result = done("started")
      say(`ready on ${result.brokers[0]} in ${(result.ms / 1000).toFixed(1)}s`)
      return result
    }
    await sleep(250)
  }
  throw new Error(`Kafka did not answer within ${READY_TIMEOUT_MS / 1000}s. Log tail:\n${logTail()}`)
}

/** SIGTERM the broker we started (SIGKILL after 30 s). Data is kept. Returns false if none ran. */
export async function stopKafka(): Promise<boolean> {
  if (external()) {
    say("KAFKA_BROKERS is set, not stopping the external broker")
    return false
  }
  const pid = ourBrokerPid()
  fs.rmSync(PID_FILE(), { force: true })
  if (pid === undefined) {
    say("not running (no live pid file)")
    return false
  }
  const t0 = performance.now()
  process.kill(pid, "SIGTERM")
  const deadline = Date.now() + STOP_TIMEOUT_MS
  while (alive(pid) && Date.now() < deadline) await sleep(100)
  if (alive(pid)) {
    say(`pid ${pid} ignored SIGTERM for ${STOP_TIMEOUT_MS / 1000}s, sending SIGKILL`)
    process.kill(pid, "SIGKILL")
    while (alive(pid)) await sleep(100)
    fs.rmSync(CDS_TMP, { force: true })
  } else if (fs.existsSync(CDS_TMP)) {
    fs.renameSync(CDS_TMP, CDS) // first clean exit wrote the class archive (makes this stop slower once)
  }
  say(`stopped pid ${pid} in ${((performance.now() - t0) / 1000).toFixed(1)}s`)
  return true
}

/** Stop and delete all broker data (topics, offsets, cluster id). Jars are kept, the CDS archive is rebuilt. */
export async function resetKafka(): Promise<void> {
  await stopKafka()
  for (const p of [LOG_DIR(), PROPS(), LOG_FILE(), CDS]) fs.rmSync(p, { recursive: true, force: true })
  say(`deleted ${path.relative(process.cwd(), LOG_DIR()) || LOG_DIR()}`)
}

// --- internals -------------------------------------------------------------

/** What running the local broker needs on PATH, with the Debian package that provides it. */
const TOOLS = [
  { command: "java", what: "Java 17+ (Kafka runs on it)", debian: "openjdk-17-jre-headless" },
  { command: "mvn", what: "Maven (it fetches the Kafka jars)", debian: "maven" },
] as const

/** Fails with one line naming the package to install when java or mvn is not on PATH. */
function requireTools(): void {
  for (const tool of TOOLS) {
    if (!onPath(tool.command)) {
      throw new Error(
        `\`${tool.command}\` not found on PATH: the local Kafka broker needs ${tool.what}. ` +
          `Install it with: sudo apt-get install ${tool.debian} (or set KAFKA_BROKERS to use another broker)`
      )
    }
  }
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? "").split(path.delimiter).filter(Boolean).some((dir) => {
    try {
      fs.accessSync(path.join(dir, command), fs.constants.X_OK)
      return fs.statSync(path.join(dir, command)).isFile()
    } catch {
      return false
    }
  })
}

function pinnedVersion(): string {
  const version = /<kafka\.version>(.+?)<\/kafka\.version>/.exec(fs.readFileSync(POM, "utf8"))?.[1]
  if (!version) throw new Error(`no <kafka.version> in ${POM}`)
  return version
}

/** mvn dependency:copy-dependencies into infra/.kafka/lib-VERSION, once (marker file). */
function resolveJars(): void {
  const marker = path.join(LIB, ".complete")
  if (fs.existsSync(marker)) return
  say(`resolving Kafka ${VERSION} jars with Maven into ${LIB} ...`)
  fs.rmSync(LIB, { recursive: true, force: true }) // drop a half-finished earlier attempt
  const t0 = performance.now()
  const args = ["-B", "-q", "-f", POM, `-Dkafka.version=${VERSION}`,
    "dependency:copy-dependencies", `-DoutputDirectory=${LIB}`]
  const mvn = spawnSync("mvn", args, { encoding: "utf8" })
  if (mvn.error || mvn.status !== 0) {
    // -q keeps a successful run silent; on failure show everything Maven said (minus the
    // color codes Debian's Maven prints even with -B).
    const output = `${mvn.stdout ?? ""}${mvn.stderr ?? ""}`.replace(/\x1b\[[0-9;]*m/g, "")
    throw new Error(`mvn ${args.join(" ")} failed (${mvn.error?.message ?? `exit ${mvn.status}`}):\n${output}`)
  }
  fs.writeFileSync(marker, `${new Date().toISOString()}\n`)
  say(`jars resolved in ${((performance.now() - t0) / 1000).toFixed(1)}s`)
}

/** server.properties from the repo + the keys that depend on port and checkout path. */
function writeProps(): void {
  fs.mkdirSync(DATA, { recursive: true })
  const dynamic = [
    `listeners=PLAINTEXT://${HOST}:${port()},CONTROLLER://${HOST}:${port() + 1}`,
    `advertised.listeners=PLAINTEXT://${HOST}:${port()}`,
    `controller.quorum.voters=1@${HOST}:${port() + 1}`,
    `log.dirs=${LOG_DIR()}`,
  ]
  const text = `${fs.readFileSync(TEMPLATE, "utf8")}\n# --- generated by kafka.ts ---\n${dynamic.join("\n")}\n`
  fs.writeFileSync(PROPS(), text)
}

/**
 * A Kafka cluster id: a base64url (unpadded) random 16-byte UUID. One starting with "-" would be
 * read as an option by the storage tool's argument parser (1 format in 64 failed so); Kafka's own
 * Uuid.randomUuid draws again in that case, and so does this.
 */
export function newClusterId(random: (n: number) => Buffer = randomBytes): string {
  let id = random(16).toString("base64url")
  while (id.startsWith("-")) id = random(16).toString("base64url")
  return id
}

/** Format the KRaft log dir once; existing data (topics, offsets) survives stop/start. */
function formatStorage(): void {
  if (fs.existsSync(path.join(LOG_DIR(), "meta.properties"))) return
  const clusterId = newClusterId()
  const r = spawnSync("java", ["-cp", `${LIB}/*`, ...JVM_OPTS, "kafka.tools.StorageTool",
    "format", "--config", PROPS(), "--cluster-id", clusterId], { encoding: "utf8" })
  if (r.error || r.status !== 0) {
    throw new Error(`kafka storage format failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout}${r.stderr}`)
  }
  say(`formatted ${LOG_DIR()} (cluster id ${clusterId})`)
}

/** Start the broker JVM detached (own process group) so it outlives this process. */
function launch(): number {
  const out = fs.openSync(LOG_FILE(), "w")
  let cds = `-XX:SharedArchiveFile=${CDS}`
  if (!fs.existsSync(CDS)) {
    fs.rmSync(CDS_TMP, { force: true }) // leftover of a run that did not exit cleanly
    cds = `-XX:ArchiveClassesAtExit=${CDS_TMP}`
  }
  const child = spawn("java", ["-cp", `${LIB}/*`, ...JVM_OPTS, cds, "kafka.Kafka", PROPS()], {
    detached: true,
    stdio: ["ignore", out, out],
  })
  fs.closeSync(out)
  child.unref()
  if (child.pid === undefined) throw new Error("failed to spawn java (is a JDK 17+ on PATH?)")
  fs.writeFileSync(PID_FILE(), `${child.pid}\n`)
  return child.pid
}

/** The pid of the local broker this checkout runs on KAFKA_PORT, if alive; undefined with KAFKA_BROKERS (for benches). */
export function localBrokerPid(): number | undefined {
  return external() ? undefined : ourBrokerPid()
}

/** The pid from the port's pid file, if that process is alive and really our broker (pids get reused). */
function ourBrokerPid(): number | undefined {
  const pid = Number.parseInt(fs.existsSync(PID_FILE()) ? fs.readFileSync(PID_FILE(), "utf8") : "", 10)
  if (!Number.isInteger(pid) || !alive(pid)) return undefined
  const ps = spawnSync("ps", ["-o", "command=", "-p", String(pid)], { encoding: "utf8" })
  return ps.stdout.includes("kafka.Kafka") ? pid : undefined
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** True if something accepts a TCP connection on host:port within a second. */
export function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: 1000 })
    const finish = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.once("connect", () => finish(true))
    socket.once("timeout", () => finish(false))
    socket.once("error", () => finish(false))
  })
}

function splitHostPort(hostPort: string): [string, number] {
  const i = hostPort.lastIndexOf(":")
  return [hostPort.slice(0, i), Number(hostPort.slice(i + 1))]
}

function logTail(lines = 40): string {
  if (!fs.existsSync(LOG_FILE())) return "(no log file)"
  return fs.readFileSync(LOG_FILE(), "utf8").trimEnd().split("\n").slice(-lines).join("\n")
}

// --- CLI -------------------------------------------------------------------

if (import.meta.main) {
  // kafkajs 2.2.4 calls setTimeout with a negative delay on every response, which Node 24
  // reports as TimeoutNegativeWarning (harmless; tulios/kafkajs#1751). Keep the CLI output clean.
  process.removeAllListeners("warning")
  process.on("warning", (w) => w.name === "TimeoutNegativeWarning" || console.warn(w))
  const cmd = process.argv[2]
  try {
    if (cmd === "start") await startKafka()
    else if (cmd === "stop") await stopKafka()
    else if (cmd === "reset") await resetKafka()
    else if (cmd === "status") {
      const up = await isKafkaUp()
      say(`${up ? "up" : "DOWN"} on ${brokers().join(",")}`)
      process.exitCode = up ? 0 : 1
    } else {
      console.error("usage: node infra/kafka.ts start|stop|reset|status")
      process.exitCode = 2
    }
  } catch (e) {
    console.error(`[kafka] ${e instanceof Error ? e.message : e}`)
    process.exitCode = 1
  }
}
