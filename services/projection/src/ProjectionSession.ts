/**
 * Each statement planned for its parameters and for the tables as they are now. A connection
 * otherwise settles on a generic plan after five executions of a prepared statement and keeps it
 * until the next ANALYZE of its tables: planned while `endpoints` (or the rebuild's table) was
 * nearly empty, a batch's row lookup stayed a sequential scan as the table grew.
 * test/EndpointProjection.test.ts pins that the lookup never runs on a generic plan.
 */
export const planEachStatement = { plan_cache_mode: "force_custom_plan" } as const

/** The live projection's session settings. */
export const projectionSession = {
  // No WAL flush wait on commit: read models are rebuildable from Kafka, and rows and offsets commit
  // atomically, so a commit lost in a Postgres crash is simply applied again.
  synchronous_commit: "off",
  ...planEachStatement
} as const
