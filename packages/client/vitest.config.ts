import { unitOnly } from "../../vitest.tiers.ts"

// Pure: the drift test builds the document in-process and needs neither broker nor Postgres.
// The client against a running platform is tested in test/e2e/client.test.ts.
export default unitOnly()
