import { Db, type Sql, type Tx, unboundedStatements } from "@orbit/db"
import { decodeDeliveryAttempted, type DeliveryAttempted, ISO_INSTANT_PATTERN, topicsFor } from "@orbit/domain"
import { KafkaClient } from "@orbit/kafka"
import { Cause, Context, Effect, Layer, Schedule } from "effect"
import type { KafkaMessage } from "@orbit/kafka"
import { readNextOffset, writeNextOffset } from "./OffsetStore.ts"
import { runProjection } from "./ProjectionRunner.ts"

export const ATTEMPTS_PROJECTION = "delivery_attempts"

/**
 * One row of `delivery_attempts` (packages/db/migrations/0002_delivery_attempts.sql): the attempt
 * event's fields, its `event_id` as the row's `id`, its instants normalised.
 */
export type AttemptRow = Omit<DeliveryAttempted, "_tag" | "schema_version" | "event_id" | "body" | "addressed" | "trace_id"> & {
  readonly id: string
  /** 0011_attempt_trace_id.sql: the attempt span's trace, or null. */
  readonly trace_id: string | null
}

const TRACE_ID = /^[0-9a-f]{32}$/

/** One row of `delivery_payloads` (0007_recover_payloads.sql): what a delivery is sent again from. */
export interface PayloadRow {
  readonly delivery_id: string
  readonly endpoint_id: string
  readonly tenant_id: string
  readonly mode: DeliveryAttempted["mode"]
  readonly source_event_id: string
  readonly source_event_type: string
  readonly body: string
  readonly addressed: boolean
  readonly occurred_at: string
}

/** The payload row of an attempt event that carries the body (a chain's first attempt), pure. */
export const payloadRow = (e: DeliveryAttempted, row: AttemptRow): PayloadRow | undefined =>
  e.body === undefined || e.body.includes("\u0000") ? undefined : {
    delivery_id: row.delivery_id,
    endpoint_id: row.endpoint_id,
    tenant_id: row.tenant_id,
    mode: row.mode,
    source_event_id: row.source_event_id,
    source_event_type: row.source_event_type,
    body: e.body,
    addressed: e.addressed === true,
    occurred_at: row.occurred_at
  }

const INT4_MIN = -(2 ** 31)
const INT4_MAX = 2 ** 31 - 1

/** An ISO instant, normalised so Postgres reads it exactly as JavaScript did; undefined if unreadable. */
const instant = (s: string): string | undefined => {
  if (!ISO_INSTANT_PATTERN.test(s)) return undefined
  const ms = Date.parse(s)
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString()
}

/**
 * The row for an attempt event (pure), or the reason it cannot be stored. The schema already
 * checked the shape; this refuses what the schema lets through but Postgres would reject (a bad
 * timestamp, an integer beyond int4, a NUL character), so one odd record can't wedge the projection.
 */
export const attemptRow = (e: DeliveryAttempted): AttemptRow | { readonly poison: string } => {
  const occurredAt = instant(e.occurred_at)
  if (occurredAt === undefined) return { poison: "occurred_at is not an ISO 8601 instant" }
  const nextAttemptAt = e.next_attempt_at === null ? null : instant(e.next_attempt_at)
  if (nextAttemptAt === undefined) return { poison: "next_attempt_at is not an ISO 8601 instant" }
  for (const [field, n] of [["attempt", e.attempt], ["http_status", e.http_status], ["duration_ms", e.duration_ms]] as const) {
    if (n !== null && (n < INT4_MIN || n > INT4_MAX)) return { poison: `${field} is out of range` }
  }
  const row: AttemptRow = {
    id: e.event_id,
    delivery_id: e.delivery_id,
    endpoint_id: e.endpoint_id,
    tenant_id: e.tenant_id,
    mode: e.mode,
    source_event_id: e.source_event_id,
    source_event_type: e.source_event_type,
    attempt: e.attempt,
    outcome: e.outcome,
    http_status: e.http_status,
    duration_ms: e.duration_ms,
    error_class: e.error_class,
    error_message: e.error_message,
    next_attempt_at: nextAttemptAt,
    dead_lettered: e.dead_lettered,
    occurred_at: occurredAt,
    // Anything but a trace id is dropped: the column only ever holds what a trace can be found by.
    trace_id: e.trace_id !== undefined && TRACE_ID.test(e.trace_id) ? e.trace_id : null
  }
  for (const value of Object.values(row)) {
    if (typeof value === "string" && value.includes("\u0000")) return { poison: "a text field contains a NUL character" }
  }
  return row
}

/** Rows per INSERT statement (17 parameters each, well under Postgres' 65535). */
const INSERT_CHUNK = 1000

/**
 * Applies a batch of attempt events, skipping records below the stored offset, and stores the new
 * offset in the same transaction (as the endpoint projection does). Inserts are also idempotent on
 * the attempt's event id, so a record applied twice by any path adds one row.
 */
export const applyAttemptBatch = async (options: {
  readonly tx: Tx
  readonly projection: string
  readonly topic: string
  readonly partition: number
  readonly messages: ReadonlyArray<KafkaMessage>
  readonly onPoison: (offset: string, error: unknown) => void
}): Promise<{ readonly next: bigint | undefined; readonly inserted: number }> => {
  const { tx, projection, topic, partition } = options
  const next = await readNextOffset(tx, projection, topic, partition)
  let last: bigint | undefined
  const rows: Array<AttemptRow> = []
  const payloads = new Map<string, PayloadRow>()
  for (const message of options.messages) {
    const offset = BigInt(message.offset)
    if (offset < next) continue
    last = offset
    let event: DeliveryAttempted
    try {
      event = decodeDeliveryAttempted(message.value?.toString("utf8") ?? "")
    } catch (error) {
      // A record we cannot read must not stop the read model; it is logged and skipped.
      options.onPoison(message.offset, error)
      continue
    }
    const row = attemptRow(event)
    if ("poison" in row) {
      options.onPoison(message.offset, row.poison)
      continue
    }
    rows.push(row)
    const payload = payloadRow(event, row)
    // One per delivery per statement (ON CONFLICT cannot touch a row twice); the first one wins.
    if (payload !== undefined && !payloads.has(payload.delivery_id)) payloads.set(payload.delivery_id, payload)
  }
  if (last === undefined) return { next: undefined, inserted: 0 }
  let inserted = 0
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
    const chunk = rows.slice(i, i + INSERT_CHUNK)
    const result = await tx`INSERT INTO delivery_attempts ${tx(chunk as Array<AttemptRow>)} ON CONFLICT (id) DO NOTHING`
    inserted += result.count
  }
  const payloadRows = [...payloads.values()]
  for (let i = 0; i < payloadRows.length; i += INSERT_CHUNK) {
    const chunk = payloadRows.slice(i, i + INSERT_CHUNK)
    await tx`INSERT INTO delivery_payloads ${tx(chunk as Array<PayloadRow>)} ON CONFLICT (delivery_id) DO NOTHING`
  }
  await writeNextOffset(tx, projection, topic, partition, last + 1n)
  return { next: last + 1n, inserted }
}

/**
 * Deletes attempts (and delivery payloads) that occurred before `olderThan`, `batch` rows per statement so no single
 * transaction holds many locks; returns how many were deleted.
 */
export const pruneAttempts = async (sql: Sql, olderThan: Date, batch = 10_000): Promise<number> => {
  let total = 0
  for (;;) {
    const { count } = await sql`
      DELETE FROM delivery_attempts
      WHERE id IN (SELECT id FROM delivery_attempts WHERE occurred_at < ${olderThan} LIMIT ${batch})`
    total += count
    if (count < batch) break
  }
  for (;;) {
    const { count } = await sql`
      DELETE FROM delivery_payloads
      WHERE delivery_id IN (SELECT delivery_id FROM delivery_payloads WHERE occurred_at < ${olderThan} LIMIT ${batch})`
    if (count < batch) return total
  }
}

/**
 * How long the attempt log's worker waits for more records once some have arrived: under load a
 * partition is then written in at most one transaction per interval, not one per fetch (each with
 * its offset reads and writes and a commit). Nothing waits on the log record by record: no request
 * reads its own attempts back, so the log may trail the attempts by this much more.
 */
const GATHER = "100 millis"

/** How often the attempt log drops what its topic no longer keeps. */
const PRUNE_EVERY = "1 hour"

/**
 * The live projection of `webhooks.delivery-attempts` into the `delivery_attempts` table. The table
 * keeps what the topic keeps (its retention, 30 days): older rows are deleted at start and hourly,
 * so the log an API caller sees is the one a rebuild from Kafka would give.
 */
export class AttemptProjection extends Context.Service<AttemptProjection, {}>()("@orbit/projection/AttemptProjection") {
  static readonly layer = Layer.effect(
    AttemptProjection,
    Effect.gen(function*() {
      const { schema, sql } = yield* Db
      const { topicPrefix } = yield* KafkaClient
      yield* runProjection({
        name: "delivery-attempt projection",
        label: "attempts",
        projection: ATTEMPTS_PROJECTION,
        reset: async (tx) => {
          await unboundedStatements(tx)
          await tx`DELETE FROM delivery_attempts`
          await tx`DELETE FROM delivery_payloads`
        },
        // Its own group (the endpoint projection's is `orbit-projection.<schema>`); the schema in
        // the name means a fresh read model starts from offset 0.
        groupId: `${topicPrefix}orbit-projection-attempts.${schema}`,
        topic: topicsFor(topicPrefix).attempts.name,
        gather: GATHER,
        apply: (tx, batch, onPoison) =>
          applyAttemptBatch({
            tx,
            projection: ATTEMPTS_PROJECTION,
            topic: batch.topic,
            partition: batch.partition,
            messages: batch.messages,
            onPoison
          }).then((applied) => applied.next)
      })
      const retentionMs = topicsFor(topicPrefix).attempts.retentionMs
      const prune = Effect.tryPromise(() => pruneAttempts(sql, new Date(Date.now() - retentionMs))).pipe(
        Effect.flatMap((deleted) => deleted > 0 ? Effect.logInfo("delivery attempts past retention deleted", { deleted }) : Effect.void),
        Effect.catchCause((cause) => Effect.logWarning("pruning delivery attempts failed; will try again", { cause: String(Cause.squash(cause)) }))
      )
      yield* Effect.forkScoped(Effect.repeat(prune, Schedule.spaced(PRUNE_EVERY)))
      return AttemptProjection.of({})
    })
  )
}
