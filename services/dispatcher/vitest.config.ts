import { tiers } from "../../vitest.tiers.ts"

// Integration tests run against the real broker (KAFKA_BROKERS, else 127.0.0.1:KAFKA_PORT, default 9092); each file uses its own topic prefix.
export default tiers({
  unit: ["test/pure.test.ts", "test/metrics-labels.test.ts"],
  integration: { testTimeout: 60_000, hookTimeout: 60_000, pool: "forks" }
})
