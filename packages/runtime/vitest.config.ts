import { unitOnly } from "../../vitest.tiers.ts"

// Every test here is pure (no broker, no Postgres).
export default unitOnly()
