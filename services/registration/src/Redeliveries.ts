import { randomUUID } from "node:crypto"
import { Db, DbUnavailable, query } from "@orbit/db"
import { type DeliveryPayload, encodeDeliveryTask, randomBase62, redeliveryTask, topicsFor } from "@orbit/domain"
import { KafkaClient, type KafkaUnavailable, Producer } from "@orbit/kafka"
import { Context, Effect, Exit, Layer } from "effect"
import type { Principal } from "./ApiKeys.ts"

/** How long a repeat of the same recovery window answers with the first recovery. */
export const RECOVERY_DEDUPE_MS = 24 * 3600_000

/** Records per produce request of a recovery. */
const PRODUCE_CHUNK = 500

export interface Recovery {
  readonly recovery_id: string
  readonly endpoint_id: string
  readonly since: string
  readonly until: string
  /** Deliveries sent again by this recovery (a repeat answers with the first one's count). */
  readonly deliveries: number
  readonly created_at: string
}

export interface RetryStarted {
  readonly delivery_id: string
  readonly endpoint_id: string
  readonly event_id: string
  readonly event_type: string
  /** The number the attempt will carry in the attempt log: one more than the delivery's last. */
  readonly attempt: number
}

/** A `delivery_payloads` row: the payload's fields, `addressed` stored as a boolean. */
interface PayloadRow extends Omit<DeliveryPayload, "addressed"> {
  readonly addressed: boolean
}

const toPayload = ({ addressed, ...payload }: PayloadRow): DeliveryPayload => ({
  ...payload,
  ...(addressed ? { addressed: true as const } : {})
})

interface RecoveryRow {
  readonly id: string
  readonly endpoint_id: string
  readonly since: Date
  readonly until: Date
  readonly deliveries: number
  readonly created_at: Date
}

const toRecovery = (r: RecoveryRow): Recovery => ({
  recovery_id: r.id,
  endpoint_id: r.endpoint_id,
  since: r.since.toISOString(),
  until: r.until.toISOString(),
  deliveries: r.deliveries,
  created_at: r.created_at.toISOString()
})

/** A produce that failed inside the recovery's transaction (which then rolls back). */
class ProduceFailed extends Error {
  readonly error: KafkaUnavailable
  constructor(error: KafkaUnavailable) {
    super(error.message)
    this.error = error
  }
}

/**
 * Sends deliveries of one endpoint again, through the dispatcher's normal path: each becomes a
 * `DeliveryTask` on `webhooks.deliveries` with the same delivery id and the exact body of its first
 * attempt (from `delivery_payloads`, which the projection fills from the attempt events). The
 * dispatcher then matches (a deleted, inactive or unsubscribed endpoint gets nothing), signs with
 * the endpoint's current secret(s) and records every attempt in the attempt log. The caller checks
 * that the endpoint is the principal's; tenant and mode are matched here again all the same.
 */
export class Redeliveries extends Context.Service<Redeliveries, {
  /**
   * Every delivery of the endpoint with an attempt in `[since, until]` whose latest attempt failed
   * and ended its chain (no retry scheduled: dead-lettered, or a single retry that failed), each
   * sent once as a new attempt chain. A repeat of the same window within 24 h returns the first.
   */
  recover(
    p: Principal,
    endpointId: string,
    window: { readonly since: Date; readonly until: Date; readonly untilRequested: boolean }
  ): Effect.Effect<Recovery, DbUnavailable | KafkaUnavailable>
  /** One attempt of the delivery now, whatever its last outcome; undefined when it is unknown. */
  retry(p: Principal, endpointId: string, deliveryId: string): Effect.Effect<RetryStarted | undefined, DbUnavailable | KafkaUnavailable>
}>()("@orbit/registration/Redeliveries") {
  static readonly layer = Layer.effect(
    Redeliveries,
    Effect.gen(function*() {
      const { sql } = yield* Db
      const producer = yield* Producer
      const { topicPrefix } = yield* KafkaClient
      const topic = topicsFor(topicPrefix).deliveries.name
      const run = Effect.runPromiseWith(yield* Effect.context<never>())

      /** Keyed by endpoint id, like every task; no index offsets: the worker syncs its index first. */
      const produce = (payloads: ReadonlyArray<DeliveryPayload>, once?: { readonly attempt: number }) =>
        Effect.gen(function*() {
          const now = Date.now()
          const messages = payloads.map((d) => ({ key: d.endpoint_id, value: encodeDeliveryTask(redeliveryTask(d, now, randomUUID, { once })) }))
          for (let i = 0; i < messages.length; i += PRODUCE_CHUNK) yield* producer.send(topic, messages.slice(i, i + PRODUCE_CHUNK))
        })

      const recover = Effect.fn("Redeliveries.recover")(function*(
        p: Principal,
        endpointId: string,
        window: { readonly since: Date; readonly until: Date; readonly untilRequested: boolean }
      ) {
        const untilKey = window.untilRequested ? window.until : null
        const dedupeAfter = new Date(Date.now() - RECOVERY_DEDUPE_MS)
        return yield* Effect.tryPromise({
          try: () =>
            sql.begin(async (tx) => {
              // One recovery of an endpoint at a time, so two identical requests start one recovery.
              await tx`SELECT pg_advisory_xact_lock(hashtext(${`orbit-recover:${endpointId}`}))`
              await tx`DELETE FROM recoveries WHERE endpoint_id = ${endpointId} AND created_at < ${dedupeAfter}`
              const [previous] = await tx<Array<RecoveryRow>>`
                SELECT id, endpoint_id, since, until, deliveries, created_at FROM recoveries
                WHERE endpoint_id = ${endpointId} AND tenant_id = ${p.tenantId} AND mode = ${p.mode}
                  AND since = ${window.since} AND until_requested IS NOT DISTINCT FROM ${untilKey}
                  AND created_at >= ${dedupeAfter}
                ORDER BY created_at DESC LIMIT 1`
              if (previous !== undefined) return toRecovery(previous)
              // Read and produced in chunks, so a window of many failures never sits in memory whole.
              let sent = 0
              const failed = tx<Array<PayloadRow>>`
                WITH touched AS (
                  SELECT DISTINCT delivery_id FROM delivery_attempts
                  WHERE endpoint_id = ${endpointId} AND tenant_id = ${p.tenantId} AND mode = ${p.mode}
                    AND occurred_at >= ${window.since} AND occurred_at <= ${window.until}
                ), latest AS (
                  SELECT DISTINCT ON (a.delivery_id) a.delivery_id, a.outcome, a.next_attempt_at
                  FROM delivery_attempts a JOIN touched USING (delivery_id)
                  WHERE a.endpoint_id = ${endpointId}
                  ORDER BY a.delivery_id, a.occurred_at DESC, a.id DESC
                )
                SELECT p.delivery_id, p.endpoint_id, p.tenant_id, p.mode, p.source_event_id, p.source_event_type, p.body, p.addressed
                FROM latest l JOIN delivery_payloads p USING (delivery_id)
                WHERE l.outcome = 'failed' AND l.next_attempt_at IS NULL
                  AND p.endpoint_id = ${endpointId} AND p.tenant_id = ${p.tenantId} AND p.mode = ${p.mode}
                ORDER BY p.occurred_at, p.delivery_id`
              for await (const rows of failed.cursor(PRODUCE_CHUNK)) {
                // Each chunk is durable before the next is read; the recovery is recorded only after
                // the last, so a failed produce records nothing (what was sent is sent at least once).
                const produced = await run(Effect.exit(produce(rows.map(toPayload))))
                if (Exit.isFailure(produced)) {
                  const error = produced.cause.reasons.find((r) => r._tag === "Fail")
                  throw error === undefined ? new Error("producing the recovery's tasks was interrupted") : new ProduceFailed(error.error)
                }
                sent += rows.length
              }
              const [created] = await tx<Array<RecoveryRow>>`
                INSERT INTO recoveries (id, tenant_id, mode, endpoint_id, since, until_requested, until, deliveries)
                VALUES (${`rcv_${randomBase62(24)}`}, ${p.tenantId}, ${p.mode}, ${endpointId}, ${window.since}, ${untilKey},
                  ${window.until}, ${sent})
                RETURNING id, endpoint_id, since, until, deliveries, created_at`
              return toRecovery(created!)
            }),
          catch: (error): DbUnavailable | KafkaUnavailable =>
            error instanceof ProduceFailed
              ? error.error
              : new DbUnavailable({ message: error instanceof Error ? error.message : String(error) })
        })
      })

      const retry = Effect.fn("Redeliveries.retry")(function*(p: Principal, endpointId: string, deliveryId: string) {
        const [row] = yield* query(() =>
          sql<Array<PayloadRow & { readonly last_attempt: number | null }>>`
            SELECT p.delivery_id, p.endpoint_id, p.tenant_id, p.mode, p.source_event_id, p.source_event_type, p.body, p.addressed,
              (SELECT max(attempt) FROM delivery_attempts a WHERE a.delivery_id = p.delivery_id AND a.endpoint_id = p.endpoint_id) AS last_attempt
            FROM delivery_payloads p
            WHERE p.delivery_id = ${deliveryId} AND p.endpoint_id = ${endpointId} AND p.tenant_id = ${p.tenantId} AND p.mode = ${p.mode}`
        )
        if (row === undefined) return undefined
        const attempt = (row.last_attempt ?? 0) + 1
        yield* produce([toPayload(row)], { attempt })
        return {
          delivery_id: row.delivery_id,
          endpoint_id: row.endpoint_id,
          event_id: row.source_event_id,
          event_type: row.source_event_type,
          attempt
        } satisfies RetryStarted
      })

      return Redeliveries.of({ recover, retry })
    })
  )
}
