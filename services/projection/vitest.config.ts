import { tiers } from "../../vitest.tiers.ts"

// Integration tests run against the real broker and real Postgres, each file in its own schema and topic prefix.
export default tiers({
  unit: ["test/AttemptRow.test.ts", "test/CoalescedCommits.test.ts", "test/PartitionWorkers.test.ts"]
})
