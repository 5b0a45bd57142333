// Local Kafka (KRaft) for dev and tests, run from the jars Maven resolves from Maven Central --
// no Docker, no Kafka distribution tarball. One combined broker+controller by default, or a
// cluster of several on this machine (`--brokers 3`).
//
//   node infra/kafka.ts start [--brokers N]|stop|reset|status
//
// Or import { startKafka, stopKafka, brokers } from another script, or `localKafka({ port, dataDir })`
// for a broker (or cluster) of a test's own, on ports and in a directory nobody else uses.
// Env: KAFKA_PORT (default 9092; the controller uses KAFKA_PORT+1; broker n of a cluster uses
// KAFKA_PORT+2(n-1) and the port after it), KAFKA_BROKERS (an external cluster, comma-separated:
// start/stop become no-ops; set with KAFKA_PORT it must name the same local broker, else start
// fails naming both; `kafkaBrokers` in @orbit/kafka is the one reading),
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
const VERSION = process.env.KAFKA_VERSION ?? pinnedVersion()
const LIB = path.join(INFRA, ".kafka", `lib-${VERSION}`)
// AppCDS archive: the first broker run records the classes it loaded when it exits cleanly
// (via stop); later starts map it instead of parsing the jars again, which starts the broker faster.
const CDS = path.join(LIB, "kafka.jsa")
const CDS_TMP = `${CDS}.tmp` // renamed to CDS only after a clean exit, so a torn dump is never used

/** The heap of one JVM: a single dev broker, or one of a cluster's (three JVMs share the box). */
const heap = (nodes: number) => (nodes === 1 ? ["-Xms256m", "-Xmx512m"] : ["-Xms128m", "-Xmx320m"])

// SerialGC: a dev broker on a 2-core box; SerialGC starts faster than G1.
// C1 only (no C2): on 2 cores the C2 compiler thread took half a core for the first minutes of
// every broker start, competing with the services under test; C1 alone is ready sooner and keeps
// the delivery latency of a freshly started broker low (docs/BENCHMARKS.md, "Kafka broker start-up").
const JVM_OPTS = [
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
]
const EXTRA_JVM_OPTS = process.env.KAFKA_JVM_OPTS?.split(/\s+/).filter(Boolean) ?? [] // e.g. a bigger heap for benchmarks

const READY_TIMEOUT_MS = 60_000
const STOP_TIMEOUT_MS = 30_000

const say = (msg: string) => console.log(`[kafka] ${msg}`)

/** Bootstrap servers for clients: KAFKA_BROKERS if set, else the local broker on KAFKA_PORT. */
export function brokers(): string[] {
  return [...where().brokers]
}

/** True if a Kafka broker answers a metadata request on `list` (default brokers()); with `size`, only once the cluster has that many brokers. */
export async function isKafkaUp(list: string[] = brokers(), size?: number): Promise<boolean> {
  const [host, port] = splitHostPort(list[0] ?? "")
  if (!(await tcpOpen(host, port))) return false
  const admin = new Kafka({
    clientId: "orbit-infra-probe",
    brokers: list,
    connectionTimeout: 1000,
    requestTimeout: 2000,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  }).admin()
  try {
    await admin.connect()
    const cluster = await admin.describeCluster()
    return size === undefined || cluster.brokers.length >= size
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

/** One broker JVM (combined broker + controller) of a local cluster, and its files. */
export interface KafkaNode {
  readonly id: number
  readonly port: number
  readonly controllerPort: number
  readonly logDir: string
  readonly props: string
  readonly logFile: string
  readonly pidFile: string
}

/** A local KRaft cluster of one or more combined broker+controller JVMs, each a detached process. */
export interface LocalKafka {
  readonly nodes: ReadonlyArray<KafkaNode>
  /** Bootstrap servers: every node's broker port. */
  readonly brokers: string[]
  /** Launches the nodes that are not running and waits until the cluster has all of them. */
  start(): Promise<"running" | "started">
  /** Launches one node (after `kill`), and waits until it answers. */
  startNode(id: number): Promise<void>
  /** SIGTERM every node (SIGKILL after 30 s); data is kept. False if none ran. */
  stop(): Promise<boolean>
  /** kill -9 of one node (default: the first): a crash, no clean shutdown. */
  kill(id?: number): Promise<void>
  /** The live pid of a node we started, if any. */
  pid(id: number): number | undefined
  /** The tail of a node's log. */
  logTail(id: number, lines?: number): string
}

/**
 * A local Kafka on `port` (node n of a cluster: `port + 2(n-1)`, its controller on the next port),
 * with its data under `dataDir`. A single node keeps the layout `infra/.data` always had
 * (`kafka/`, `kafka.properties`, `kafka.log`, `kafka.pid`; `stem` replaces `kafka`); node n of a
 * cluster uses `kafka-node<n>*`.
 * Internal topics are replicated to min(3, nodes) brokers with one fewer in sync required.
 */
export function localKafka(options: { port: number; dataDir: string; nodes?: number; stem?: string }): LocalKafka {
  const size = options.nodes ?? 1
  if (!Number.isInteger(size) || size < 1) throw new Error(`--brokers must be a whole number >= 1, got ${size}`)
  const dir = options.dataDir
  const nodes: KafkaNode[] = Array.from({ length: size }, (_, i) => {
    const suffix = `${options.stem ?? "kafka"}${size === 1 ? "" : `-node${i + 1}`}`
    return {
      id: i + 1,
      port: options.port + 2 * i,
      controllerPort: options.port + 2 * i + 1,
      logDir: path.join(dir, `${suffix}`),
      props: path.join(dir, `${suffix}.properties`),
      logFile: path.join(dir, `${suffix}.log`),
      pidFile: path.join(dir, `${suffix}.pid`),
    }
  })
  const list = nodes.map((n) => `${HOST}:${n.port}`)
  const node = (id: number) => {
    const n = nodes.find((x) => x.id === id)
    if (!n) throw new Error(`no Kafka node ${id} (nodes 1..${size})`)
    return n
  }

  const prepare = () => {
    requireTools()
    resolveJars()
    fs.mkdirSync(dir, { recursive: true })
    for (const n of nodes) writeProps(n, nodes)
    // Every node of one cluster is formatted with the same cluster id.
    const unformatted = nodes.filter((n) => !fs.existsSync(path.join(n.logDir, "meta.properties")))
    if (unformatted.length > 0) {
      const formatted = nodes.find((n) => !unformatted.includes(n))
      const clusterId = formatted ? readClusterId(formatted) : newClusterId()
      for (const n of unformatted) formatStorage(n, clusterId)
    }
  }

  const launchIfDown = async (n: KafkaNode): Promise<boolean> => {
    if (ourBrokerPid(n) !== undefined) return false
    if (await tcpOpen(HOST, n.port)) {
      throw new Error(`port ${n.port} is in use by something that is not a Kafka broker started from ${dir}`)
    }
    const pid = launch(n, size)
    say(`launched Kafka ${VERSION} node ${n.id} (pid ${pid}) on ${HOST}:${n.port}`)
    return true
  }

  const waitReady = async (waitFor: KafkaNode[], clusterSize: number) => {
    const deadline = Date.now() + READY_TIMEOUT_MS
    while (Date.now() < deadline) {
      for (const n of waitFor) {
        const pid = ourBrokerPid(n)
        if (pid === undefined) throw new Error(`Kafka node ${n.id} exited during startup. Log tail:\n${logTail(n)}`)
      }
      const up = await Promise.all(waitFor.map((n) => isKafkaUp([`${HOST}:${n.port}`], clusterSize)))
      if (up.every(Boolean)) return
      await sleep(250)
    }
    throw new Error(`Kafka did not answer within ${READY_TIMEOUT_MS / 1000}s. Log tail:\n${waitFor.map((n) => logTail(n)).join("\n")}`)
  }

  return {
    nodes,
    brokers: list,
    async start() {
      if (await isKafkaUp(list, size)) return "running"
      const launched: boolean[] = []
      if (nodes.some((n) => ourBrokerPid(n) === undefined)) prepare()
      for (const n of nodes) launched.push(await launchIfDown(n))
      if (!launched.some(Boolean)) say(`nodes in ${dir} are already starting, waiting for them...`)
      await waitReady(nodes, size)
      return "started"
    },
    async startNode(id) {
      const n = node(id)
      prepare()
      await launchIfDown(n)
      await waitReady([n], size)
    },
    async stop() {
      const stopped = await Promise.all(nodes.map((n) => stopNode(n)))
      return stopped.some(Boolean)
    },
    async kill(id = 1) {
      const n = node(id)
      const pid = ourBrokerPid(n)
      if (pid === undefined) throw new Error(`Kafka node ${id} is not running`)
      process.kill(pid, "SIGKILL")
      while (alive(pid)) await sleep(50)
      fs.rmSync(n.pidFile, { force: true })
    },
    pid: (id) => ourBrokerPid(node(id)),
    logTail: (id, lines) => logTail(node(id), lines),
  }
}

/** The checkout's own broker (or cluster of `nodes`) on KAFKA_PORT with its data in infra/.data. */
const checkoutKafka = (nodes = 1) => localKafka({ port: port(), dataDir: DATA, nodes, stem: stem() })

/** Ensure a broker is answering; downloads jars / formats storage / launches it as needed. `brokers`: how many (a local cluster). */
export async function startKafka(options: { brokers?: number } = {}): Promise<StartResult> {
  const t0 = performance.now()
  const kafka = checkoutKafka(options.brokers ?? 1)
  const done = (state: StartResult["state"]): StartResult => ({
    brokers: external() ? brokers() : kafka.brokers,
    state,
    ms: Math.round(performance.now() - t0),
  })

  if (external()) {
    say(`KAFKA_BROKERS is set, using external broker(s): ${brokers().join(",")}`)
    return done("external")
  }
  const state = await kafka.start()
  const result = done(state)
  if (state === "running") say(`already running on ${result.brokers.join(",")}`)
  else say(`ready on ${result.brokers.join(",")} in ${(result.ms / 1000).toFixed(1)}s`)
  if (kafka.nodes.length > 1) say(`clients of the cluster: KAFKA_BROKERS=${result.brokers.join(",")}`)
  return result
}

/** SIGTERM the broker(s) we started in infra/.data (SIGKILL after 30 s). Data is kept. Returns false if none ran. */
export async function stopKafka(): Promise<boolean> {
  if (external()) {
    say("KAFKA_BROKERS is set, not stopping the external broker")
    return false
  }
  const stopped = await Promise.all(checkoutNodes().map((n) => stopNode(n)))
  if (!stopped.some(Boolean)) say("not running (no live pid file)")
  return stopped.some(Boolean)
}

/** Stop and delete all broker data (topics, offsets, cluster id). Jars are kept, the CDS archive is rebuilt. */
export async function resetKafka(): Promise<void> {
  await stopKafka()
  for (const n of checkoutNodes()) {
    for (const p of [n.logDir, n.props, n.logFile]) fs.rmSync(p, { recursive: true, force: true })
  }
  fs.rmSync(CDS, { force: true })
  say(`deleted the broker data in ${path.relative(process.cwd(), DATA) || DATA}`)
}

// --- internals -------------------------------------------------------------

/** Every node the checkout's data dir holds: the single broker's and any cluster node's. */
function checkoutNodes(): KafkaNode[] {
  const single = checkoutKafka(1).nodes
  const clustered = fs.existsSync(DATA)
    ? fs.readdirSync(DATA).map((f) => new RegExp(`^${stem()}-node(\\d+)\\.properties$`).exec(f)?.[1]).filter((x) => x !== undefined).map(Number)
    : []
  const size = Math.max(0, ...clustered)
  return size > 1 ? [...single, ...checkoutKafka(size).nodes] : [...single]
}

async function stopNode(n: KafkaNode): Promise<boolean> {
  const pid = ourBrokerPid(n)
  fs.rmSync(n.pidFile, { force: true })
  if (pid === undefined) return false
  const t0 = performance.now()
  const archiving = ps(pid).includes(`-XX:ArchiveClassesAtExit=${CDS_TMP}`)
  process.kill(pid, "SIGTERM")
  const deadline = Date.now() + STOP_TIMEOUT_MS
  while (alive(pid) && Date.now() < deadline) await sleep(100)
  if (alive(pid)) {
    say(`pid ${pid} ignored SIGTERM for ${STOP_TIMEOUT_MS / 1000}s, sending SIGKILL`)
    process.kill(pid, "SIGKILL")
    while (alive(pid)) await sleep(100)
    if (archiving) fs.rmSync(CDS_TMP, { force: true })
  } else if (archiving && fs.existsSync(CDS_TMP)) {
    fs.renameSync(CDS_TMP, CDS) // first clean exit wrote the class archive (makes this stop slower once)
  }
  say(`stopped node ${n.id} (pid ${pid}) in ${((performance.now() - t0) / 1000).toFixed(1)}s`)
  return true
}

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

/**
 * server.properties from the repo + the keys that depend on the node, its ports and its data dir.
 * In a cluster every node is a controller too (a quorum that survives the loss of one of three),
 * and internal topics get min(3, nodes) replicas with one fewer in sync required (at least 1).
 */
function writeProps(n: KafkaNode, nodes: ReadonlyArray<KafkaNode>): void {
  const replicas = Math.min(3, nodes.length)
  const minIsr = Math.max(1, replicas - 1)
  const dynamic = [
    `node.id=${n.id}`,
    `listeners=PLAINTEXT://${HOST}:${n.port},CONTROLLER://${HOST}:${n.controllerPort}`,
    `advertised.listeners=PLAINTEXT://${HOST}:${n.port}`,
    `controller.quorum.voters=${nodes.map((x) => `${x.id}@${HOST}:${x.controllerPort}`).join(",")}`,
    `log.dirs=${n.logDir}`,
    ...(nodes.length === 1 ? [] : [
      `offsets.topic.replication.factor=${replicas}`,
      `transaction.state.log.replication.factor=${replicas}`,
      `transaction.state.log.min.isr=${minIsr}`,
      `share.coordinator.state.topic.replication.factor=${replicas}`,
      `share.coordinator.state.topic.min.isr=${minIsr}`,
      `default.replication.factor=${replicas}`,
      `min.insync.replicas=${minIsr}`,
    ]),
  ]
  const text = `${fs.readFileSync(TEMPLATE, "utf8")}\n# --- generated by kafka.ts (later keys win) ---\n${dynamic.join("\n")}\n`
  fs.writeFileSync(n.props, text)
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

function readClusterId(n: KafkaNode): string {
  const meta = fs.readFileSync(path.join(n.logDir, "meta.properties"), "utf8")
  const id = /^cluster\.id=(.+)$/m.exec(meta)?.[1]
  if (!id) throw new Error(`no cluster.id in ${path.join(n.logDir, "meta.properties")}`)
  return id.trim()
}

/** Format a node's KRaft log dir once; existing data (topics, offsets) survives stop/start. */
function formatStorage(n: KafkaNode, clusterId: string): void {
  const r = spawnSync("java", ["-cp", `${LIB}/*`, ...JVM_OPTS, "kafka.tools.StorageTool",
    "format", "--config", n.props, "--cluster-id", clusterId], { encoding: "utf8" })
  if (r.error || r.status !== 0) {
    throw new Error(`kafka storage format failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout}${r.stderr}`)
  }
  say(`formatted ${n.logDir} (cluster id ${clusterId})`)
}

/** Start a node's JVM detached (own process group) so it outlives this process. */
function launch(n: KafkaNode, nodes: number): number {
  const out = fs.openSync(n.logFile, "w")
  // The class archive is recorded by a single broker's first run only: nodes of a cluster start
  // together and would write the same file.
  let cds: string[] = fs.existsSync(CDS) ? [`-XX:SharedArchiveFile=${CDS}`] : []
  if (cds.length === 0 && nodes === 1) {
    fs.rmSync(CDS_TMP, { force: true }) // leftover of a run that did not exit cleanly
    cds = [`-XX:ArchiveClassesAtExit=${CDS_TMP}`]
  }
  const child = spawn("java", ["-cp", `${LIB}/*`, ...heap(nodes), ...JVM_OPTS, ...EXTRA_JVM_OPTS, ...cds, "kafka.Kafka", n.props], {
    detached: true,
    stdio: ["ignore", out, out],
  })
  fs.closeSync(out)
  child.unref()
  if (child.pid === undefined) throw new Error("failed to spawn java (is a JDK 17+ on PATH?)")
  fs.writeFileSync(n.pidFile, `${child.pid}\n`)
  return child.pid
}

function ps(pid: number): string {
  return spawnSync("ps", ["-ww", "-o", "command=", "-p", String(pid)], { encoding: "utf8" }).stdout
}

/** The pid from the node's pid file, if that process is alive and really that broker (pids get reused). */
/** The pid of the local broker this checkout runs on KAFKA_PORT (its first node), if alive; undefined with KAFKA_BROKERS (for benches). */
export function localBrokerPid(): number | undefined {
  return external() ? undefined : ourBrokerPid(checkoutKafka(1).nodes[0]!)
}

function ourBrokerPid(n: KafkaNode): number | undefined {
  const pid = Number.parseInt(fs.existsSync(n.pidFile) ? fs.readFileSync(n.pidFile, "utf8") : "", 10)
  if (!Number.isInteger(pid) || !alive(pid)) return undefined
  const command = ps(pid)
  return command.includes("kafka.Kafka") && command.includes(n.props) ? pid : undefined
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

function logTail(n: KafkaNode, lines = 40): string {
  if (!fs.existsSync(n.logFile)) return `(no log file ${n.logFile})`
  return fs.readFileSync(n.logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n")
}

// --- CLI -------------------------------------------------------------------

/** `--brokers N` (or `--brokers=N`) from the CLI arguments; 1 when absent. */
export function brokersOption(args: ReadonlyArray<string>): number {
  const i = args.findIndex((a) => a === "--brokers" || a.startsWith("--brokers="))
  if (i === -1) return 1
  const raw = args[i]!.includes("=") ? args[i]!.slice("--brokers=".length) : args[i + 1]
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 1) throw new Error(`--brokers needs a whole number of brokers >= 1, got ${raw ?? "nothing"}`)
  return n
}

if (import.meta.main) {
  // kafkajs 2.2.4 calls setTimeout with a negative delay on every response, which Node 24
  // reports as TimeoutNegativeWarning (harmless; tulios/kafkajs#1751). Keep the CLI output clean.
  process.removeAllListeners("warning")
  process.on("warning", (w) => w.name === "TimeoutNegativeWarning" || console.warn(w))
  const cmd = process.argv[2]
  try {
    if (cmd === "start") await startKafka({ brokers: brokersOption(process.argv.slice(3)) })
    else if (cmd === "stop") await stopKafka()
    else if (cmd === "reset") await resetKafka()
    else if (cmd === "status") {
      const up = await isKafkaUp()
      say(`${up ? "up" : "DOWN"} on ${brokers().join(",")}`)
      process.exitCode = up ? 0 : 1
    } else {
      console.error("usage: node infra/kafka.ts start [--brokers N]|stop|reset|status")
      process.exitCode = 2
    }
  } catch (e) {
    console.error(`[kafka] ${e instanceof Error ? e.message : e}`)
    process.exitCode = 1
  }
}
