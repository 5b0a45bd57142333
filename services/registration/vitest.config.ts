import { tiers } from "../../vitest.tiers.ts"

// Integration tests run against the real Postgres, each file in its own schema.
export default tiers({
  unit: ["test/RegistrationMetrics.test.ts", "test/Cursor.test.ts", "test/ApiErrors.test.ts", "test/EndpointState.test.ts", "test/ClientAddress.test.ts"]
})
