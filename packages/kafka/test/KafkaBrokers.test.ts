import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
import { KafkaBrokersConfig, kafkaBrokers } from "../src/index.ts"

describe("kafkaBrokers", () => {
  it("is the local broker on 9092 when neither is set", () => {
    expect(kafkaBrokers({})).toEqual({ kind: "local", port: 9092, brokers: ["127.0.0.1:9092"] })
  })

  it("moves the local broker with KAFKA_PORT alone", () => {
    expect(kafkaBrokers({ KAFKA_PORT: "19292" })).toEqual({ kind: "local", port: 19292, brokers: ["127.0.0.1:19292"] })
  })

  it("is an external cluster with KAFKA_BROKERS alone", () => {
    expect(kafkaBrokers({ KAFKA_BROKERS: "kafka-1:9092, kafka-2:9092" })).toEqual({
      kind: "external",
      brokers: ["kafka-1:9092", "kafka-2:9092"]
    })
  })

  it("is the local broker when both name it", () => {
    expect(kafkaBrokers({ KAFKA_BROKERS: "localhost:19292", KAFKA_PORT: "19292" })).toEqual({
      kind: "local",
      port: 19292,
      brokers: ["localhost:19292"]
    })
  })

  it("fails naming both when they disagree", () => {
    expect(() => kafkaBrokers({ KAFKA_BROKERS: "127.0.0.1:9092", KAFKA_PORT: "19292" })).toThrow(
      /^KAFKA_BROKERS=127\.0\.0\.1:9092 and KAFKA_PORT=19292 disagree/
    )
    expect(() => kafkaBrokers({ KAFKA_BROKERS: "kafka-1:19292", KAFKA_PORT: "19292" })).toThrow(/disagree/)
  })

  it("fails naming the setting when it is not a port or names no broker", () => {
    expect(() => kafkaBrokers({ KAFKA_PORT: "90000" })).toThrow(/^KAFKA_PORT=90000: not a port/)
    expect(() => kafkaBrokers({ KAFKA_PORT: "9o92" })).toThrow(/^KAFKA_PORT=9o92: not a port/)
    expect(() => kafkaBrokers({ KAFKA_BROKERS: " , " })).toThrow(/^KAFKA_BROKERS= , : names no broker/)
  })

  it.effect("fails the services' Config with the same message", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromEnv({ env: { KAFKA_BROKERS: "kafka-1:9092", KAFKA_PORT: "19292" } })
      const error = yield* Effect.flip(KafkaBrokersConfig.parse(provider))
      expect(error.message).toContain("KAFKA_BROKERS=kafka-1:9092 and KAFKA_PORT=19292 disagree")
      const local = yield* KafkaBrokersConfig.parse(ConfigProvider.fromEnv({ env: { KAFKA_PORT: "19292" } }))
      expect(local.brokers).toEqual(["127.0.0.1:19292"])
    }))
})
