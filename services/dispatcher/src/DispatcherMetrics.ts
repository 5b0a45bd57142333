import type { AttemptErrorClass, DeliveryTask } from "@orbit/domain"
import { topicsFor } from "@orbit/domain"
import { BacklogAge, delayTiersOf, type GroupPosition, KafkaClient, TopicAdmin } from "@orbit/kafka"
import { MetricsSampleMs, MetricsTenantLabel } from "@orbit/runtime"
import { Config, Context, Effect, Layer, Metric, Option, Schedule } from "effect"
import { DispatcherConfig } from "./DispatcherConfig.ts"
import type { AttemptResult } from "./retry/RetrySchedule.ts"

/** The bounded set of delivery outcomes the metrics report. */
export const DELIVERY_OUTCOMES = ["success", "http_error", "timeout", "connect_error", "refused_by_ssrf_rule", "tls_error", "other"] as const
export type DeliveryOutcome = typeof DELIVERY_OUTCOMES[number]

/** An attempt's outcome label (pure): the error class of the attempt log folded into the closed set above. */
export const outcomeOf = (ok: boolean, errorClass: AttemptErrorClass | null): DeliveryOutcome => {
  if (ok) return "success"
  switch (errorClass) {
    case "http_status":
    case "redirect":
      return "http_error"
    case "timeout":
      return "timeout"
    case "connection":
    case "dns":
      return "connect_error"
    case "ssrf_blocked":
      return "refused_by_ssrf_rule"
    case "tls":
      return "tls_error"
    default:
      return "other"
  }
}

/** Seconds buckets for HTTP attempts (receivers' timeouts go up to 30 s). */
const ATTEMPT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
/** Seconds buckets from an event's creation to its first attempt's end. */
const END_TO_END_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]

const sourceEventsConsumed = Metric.counter("orbit_dispatcher_source_events_consumed_total", {
  description: "Source records taken from the upstream topics and fanned out durably (valid or not)",
  incremental: true
})
const tasksProduced = Metric.counter("orbit_dispatcher_delivery_tasks_produced_total", {
  description: "Delivery tasks produced by the fan-out, one per (event, subscribed endpoint)",
  incremental: true
})
const deliveries = Metric.counter("orbit_deliveries_total", { description: "Delivery attempts made, by outcome", incremental: true })
const attemptDuration = Metric.histogram("orbit_delivery_attempt_duration_seconds", {
  description: "Duration of one HTTP delivery attempt, by outcome",
  boundaries: ATTEMPT_BUCKETS
})
const inFlight = Metric.gauge("orbit_delivery_attempts_in_flight", { description: "HTTP delivery attempts running now" })
const heldToOne = Metric.gauge("orbit_endpoints_held_to_one_attempt", {
  description: "Endpoints marked unresponsive (last attempt timed out or could not connect), probed one attempt at a time"
})
const retryBacklog = Metric.gauge("orbit_retry_backlog_records", { description: "Deliveries waiting in a delay-queue tier" })
const retryOldest = Metric.gauge("orbit_retry_backlog_oldest_age_seconds", {
  description: "How long the oldest delivery waiting in a delay-queue tier has been there (0 when empty)"
})
const deadLetters = Metric.counter("orbit_dead_letters_total", { description: "Deliveries dead-lettered after their last attempt", incremental: true })
const invalidSourceRecords = Metric.counter("orbit_invalid_source_records_total", {
  description: "Source records that failed validation and were moved to the invalid topic",
  incremental: true
})
const consumerLag = Metric.gauge("orbit_consumer_lag_records", { description: "Records not yet committed by a dispatcher consumer group" })
const endToEnd = Metric.histogram("orbit_delivery_end_to_end_seconds", {
  description: "From an event's created_at to the end of its first delivery attempt",
  boundaries: END_TO_END_BUCKETS
})

/** An event's `created_at` from a webhook body (its third key, after `id` and `type`, whose JSON strings cannot contain it). */
const CREATED_AT = /"created_at":"([^"]+)"/
export const createdAtOf = (body: string): number | undefined => {
  const match = CREATED_AT.exec(body.slice(0, 1_024))
  if (match === null) return undefined
  const at = Date.parse(match[1]!)
  return Number.isNaN(at) ? undefined : at
}

/**
 * The dispatcher's Prometheus metrics. Counters and histograms are updated where the thing happens
 * (the hot path runs outside Effect, so updates go straight to the registry with the layer's
 * context); lag and backlog gauges are sampled from Kafka's end and committed offsets every
 * `ORBIT_METRICS_SAMPLE_MS` (`MetricsSampleMs`, default 15 s) by one background fiber.
 */
export class DispatcherMetrics extends Context.Service<DispatcherMetrics, {
  /** One source record fanned out durably into `tasks` delivery tasks, or moved aside as invalid. */
  fannedOut(tasks: number, invalid: number): void
  /** An HTTP attempt finished (for `task`, whose endpoint belongs to its tenant); `fannedOut`: the task came from the fan-out. */
  attempted(task: DeliveryTask, result: AttemptResult, now: number, fannedOut: boolean): void
  deadLettered(): void
  /** HTTP attempts running now. */
  setInFlight(n: number): void
  setHeldToOne(n: number): void
}>()("@orbit/dispatcher/DispatcherMetrics") {
  static readonly layer = Layer.effect(
    DispatcherMetrics,
    Effect.gen(function*() {
      const ctx = yield* Effect.context<never>()
      const tenantLabel = yield* MetricsTenantLabel
      const sampleMs = yield* MetricsSampleMs
      const config = yield* DispatcherConfig
      const { topicPrefix } = yield* KafkaClient
      const admin = yield* TopicAdmin
      const topics = topicsFor(topicPrefix)

      const byOutcome = new Map(DELIVERY_OUTCOMES.map((o) => [o, {
        count: Metric.withAttributes(deliveries, { outcome: o }),
        duration: Metric.withAttributes(attemptDuration, { outcome: o })
      }]))
      // Reading a series registers it: every outcome's series exists from the start, so a rate over it
      // is defined before its first attempt.
      for (const { count, duration } of byOutcome.values()) {
        if (!tenantLabel) count.valueUnsafe(ctx)
        duration.valueUnsafe(ctx)
      }
      endToEnd.valueUnsafe(ctx)
      for (const c of [sourceEventsConsumed, tasksProduced, deadLetters, invalidSourceRecords]) c.updateUnsafe(0, ctx)
      inFlight.updateUnsafe(0, ctx)
      heldToOne.updateUnsafe(0, ctx)
      const perTenant = new Map<string, Metric.Metric<number, unknown>>()
      const tenantCount = (outcome: DeliveryOutcome, tenant: string) => {
        const key = `${outcome}\u0000${tenant}`
        let metric = perTenant.get(key)
        if (metric === undefined) {
          metric = Metric.withAttributes(deliveries, { outcome, tenant })
          perTenant.set(key, metric)
        }
        return metric
      }

      const sourceTopics = Option.getOrElse(config.sourceTopics, () => [topics.sourceEvents.name])
      const groups: ReadonlyArray<{ readonly label: string; readonly topics: ReadonlyArray<string> }> = [
        { label: "orbit-dispatcher-fanout", topics: sourceTopics },
        { label: "orbit-dispatcher-delivery", topics: [topics.deliveries.name] },
        { label: "orbit-dispatcher-retry", topics: delayTiersOf(topics).map((t) => t.topic) }
      ]
      const tiers = delayTiersOf(topics).map((t) => ({
        topic: t.topic,
        records: Metric.withAttributes(retryBacklog, { tier: tierLabel(t.delayMs) }),
        oldest: Metric.withAttributes(retryOldest, { tier: tierLabel(t.delayMs) })
      }))
      const ages = new BacklogAge()

      const sample = Effect.gen(function*() {
        const positions = new Map<string, ReadonlyArray<GroupPosition>>()
        for (const group of groups) {
          let lag = 0n
          for (const [topic, at] of yield* admin.groupPositions(`${topicPrefix}${group.label}`, group.topics)) {
            positions.set(topic, at)
            for (const p of at) lag += p.end > p.committed ? p.end - p.committed : 0n
          }
          Metric.withAttributes(consumerLag, { group: group.label }).updateUnsafe(Number(lag), ctx)
        }
        const now = Date.now()
        for (const tier of tiers) {
          let records = 0n
          let oldestMs = 0
          for (const p of positions.get(tier.topic) ?? []) {
            records += p.end > p.committed ? p.end - p.committed : 0n
            oldestMs = Math.max(oldestMs, ages.observe(`${tier.topic}:${p.partition}`, p.end, p.committed, now))
          }
          tier.records.updateUnsafe(Number(records), ctx)
          tier.oldest.updateUnsafe(oldestMs / 1_000, ctx)
        }
      }).pipe(
        Effect.catchCause((cause) => Effect.logDebug("metrics: sampling consumer lag failed; next time", { cause: String(cause).slice(0, 300) }))
      )
      yield* Effect.forkScoped(Effect.repeat(sample, Schedule.spaced(`${Math.max(100, sampleMs)} millis`)))

      return DispatcherMetrics.of({
        fannedOut: (tasks, invalid) => {
          sourceEventsConsumed.updateUnsafe(1, ctx)
          if (tasks > 0) tasksProduced.updateUnsafe(tasks, ctx)
          if (invalid > 0) invalidSourceRecords.updateUnsafe(invalid, ctx)
        },
        attempted: (task, result, now, fannedOut) => {
          const outcome = outcomeOf(result.ok, result.errorClass)
          const series = byOutcome.get(outcome)!
          ;(tenantLabel ? tenantCount(outcome, task.tenant_id) : series.count).updateUnsafe(1, ctx)
          series.duration.updateUnsafe(result.durationMs / 1_000, ctx)
          if (task.attempt === 1 && fannedOut) {
            const created = createdAtOf(task.body)
            if (created !== undefined) endToEnd.updateUnsafe(Math.max(0, now - created) / 1_000, ctx)
          }
        },
        deadLettered: () => deadLetters.updateUnsafe(1, ctx),
        setInFlight: (n) => inFlight.updateUnsafe(n, ctx),
        setHeldToOne: (n) => heldToOne.updateUnsafe(n, ctx)
      })
    })
  )
}

/** A delay tier's label from its delay: `1s`, `5s`, `30s`, `2m`, `10m`, `1h`, `4h`. */
export const tierLabel = (delayMs: number): string =>
  delayMs % 3_600_000 === 0 ? `${delayMs / 3_600_000}h` : delayMs % 60_000 === 0 ? `${delayMs / 60_000}m` : `${delayMs / 1_000}s`
