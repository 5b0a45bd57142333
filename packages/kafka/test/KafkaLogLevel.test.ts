// The levels of kafkajs' own log lines and of the services' Kafka retry loops: a broker that only
// settles (leader election, coordinator loading) is Debug, a fault keeps its level. The entries
// below are the shapes kafkajs 2.2.4 logs (taken from a start of the platform).
import { createRequire } from "node:module"
import { KafkaJSNumberOfRetriesExceeded, type LogEntry, logLevel } from "../src/index.ts"
import { describe, expect, it } from "vitest"
import { isBrokerSettling, kafkaErrorType } from "../src/BrokerSettling.ts"
import { kafkajsLogLevel, unavailable } from "../src/KafkaClient.ts"

const require = createRequire(import.meta.url)
const { createErrorFromCode } = require("kafkajs/src/protocol/error.js") as { createErrorFromCode: (code: number) => Error }

const entry = (namespace: string, level: number, message: string, extra: Record<string, unknown> = {}): LogEntry => ({
  namespace,
  level: level as LogEntry["level"],
  label: level === logLevel.ERROR ? "ERROR" : "WARN",
  log: { timestamp: "2026-01-01T00:00:00.000Z", logger: "kafkajs", message, ...extra }
})

const response = (api: string, error: string) =>
  entry("Connection", logLevel.ERROR, `Response ${api}`, { broker: "127.0.0.1:9092", clientId: "orbit-webhooks", error, correlationId: 2, size: 117 })

describe("kafkajsLogLevel", () => {
  it("logs a settling broker's answers at Debug", () => {
    expect(kafkajsLogLevel(response("ListOffsets(key: 2, version: 3)", "This server is not the leader for that topic-partition"))).toBe("Debug")
    expect(kafkajsLogLevel(response("GroupCoordinator(key: 10, version: 2)", "The group coordinator is not available"))).toBe("Debug")
    expect(kafkajsLogLevel(response("Metadata(key: 3, version: 6)", "This server does not host this topic-partition"))).toBe("Debug")
    expect(kafkajsLogLevel(response("CreateTopics(key: 19, version: 3)", "Topic creation errors"))).toBe("Debug")
  })

  it("keeps a non-retriable protocol error at kafkajs' level", () => {
    expect(kafkajsLogLevel(response("Metadata(key: 3, version: 6)", "Not authorized to access topics: [Topic authorization failed]"))).toBe("Error")
    expect(kafkajsLogLevel(response("Produce(key: 0, version: 7)", "The request included message batch larger than the configured segment size on the server"))).toBe("Error")
  })

  it("logs kafkajs' retried connection attempts at Debug (the caller reports the outcome)", () => {
    expect(kafkajsLogLevel(entry("Connection", logLevel.ERROR, "Connection error: connect ECONNREFUSED 127.0.0.1:1", { broker: "127.0.0.1:1" }))).toBe("Debug")
    expect(kafkajsLogLevel(entry("BrokerPool", logLevel.ERROR, "Failed to connect to seed broker, trying another broker from the list: Connection error: connect ECONNREFUSED 127.0.0.1:1", { retryCount: 0 }))).toBe("Debug")
  })

  it("logs a consumer crash, and kafkajs restarting it, at Debug only when the broker was settling", () => {
    const crashes = new Map<string, boolean>()
    const crash = (message: string) => entry("Consumer", logLevel.ERROR, `Crash: KafkaJSProtocolError: ${message}`, { groupId: "g", stack: "..." })
    const restart = entry("Consumer", logLevel.ERROR, "Restarting the consumer in 300ms", { groupId: "g", retryCount: 0, retryTime: 300 })
    expect(kafkajsLogLevel(crash("The coordinator is loading and hence can't process requests for this group"), crashes)).toBe("Debug")
    expect(kafkajsLogLevel(restart, crashes)).toBe("Debug")
    expect(kafkajsLogLevel(crash("Not authorized to access group: Group authorization failed"), crashes)).toBe("Error")
    expect(kafkajsLogLevel(restart, crashes)).toBe("Error")
  })

  it("logs the idempotent producer's notice about its bounded retries at Debug, other warnings as given", () => {
    expect(kafkajsLogLevel(entry("Producer", logLevel.WARN, "Limiting retries for the idempotent producer may invalidate EoS guarantees"))).toBe("Debug")
    expect(kafkajsLogLevel(entry("Admin", logLevel.WARN, "Could not create topics", { error: "x" }))).toBe("Warn")
  })
})

describe("isBrokerSettling", () => {
  it("reads the kafkajs protocol error type, through kafkajs' retrier and KafkaUnavailable", () => {
    const notLeader = createErrorFromCode(6)
    expect(kafkaErrorType(notLeader)).toBe("NOT_LEADER_FOR_PARTITION")
    expect(isBrokerSettling(notLeader)).toBe(true)
    expect(isBrokerSettling(new KafkaJSNumberOfRetriesExceeded(createErrorFromCode(14), { retryCount: 5, retryTime: 300 }))).toBe(true)
    const wrapped = unavailable("listOffsets")(notLeader)
    expect(wrapped.kafkaErrorType).toBe("NOT_LEADER_FOR_PARTITION")
    expect(isBrokerSettling(wrapped)).toBe(true)
  })

  it("is false for faults: an unknown topic, a refused connection, a plain error", () => {
    expect(isBrokerSettling(createErrorFromCode(3))).toBe(false)
    expect(isBrokerSettling(unavailable("createTopics")(new Error("Connection error: connect ECONNREFUSED 127.0.0.1:1")))).toBe(false)
    expect(isBrokerSettling("This server is not the leader for that topic-partition")).toBe(false)
  })
})
