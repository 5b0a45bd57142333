import type { Sql } from "@orbit/db"

/**
 * `active (id, tenant_id, mode, since)`: every active endpoint and where its failure streak starts,
 * the later of its last success and its last change (so its attempts after `since` all failed, by
 * construction). Shared by AutoDisable's sweep and the `orbit_endpoint_failing_longest_seconds` gauge.
 * The last success comes from the attempt log's index of successes (migration 0012). MATERIALIZED:
 * inlined, Postgres evaluated each endpoint's last success once per attempt of its streak (minutes
 * with 100,000 endpoints and 2 million attempts; docs/BENCHMARKS.md).
 */
export const withStreakStarts = (sql: Sql) =>
  sql`
    WITH active AS MATERIALIZED (
      SELECT e.id, e.tenant_id, e.mode,
        GREATEST(e.updated_at, (
          SELECT max(s.occurred_at) FROM delivery_attempts s WHERE s.endpoint_id = e.id AND s.outcome = 'succeeded'
        )) AS since
      FROM endpoints e WHERE e.active
    )`
