import { Db, query, transactCarefullyOnDataError, type Tx } from "@orbit/db"
import { BacklogAge, consumeBatches, type KafkaClient, logKafkaRetry, TopicAdmin, traceContextOf } from "@orbit/kafka"
import { Cause, Clock, Config, Deferred, Effect, type Exit, Metric, References, Schedule, type Scope, Stream, Tracer } from "effect"
import type { Batch } from "@orbit/kafka"

export interface ProjectionOptions {
  /** For logs. */
  readonly name: string
  /** Its `projection` label in the metrics. */
  readonly label: "endpoints" | "attempts"
  /** Its key in `projection_offsets` and `projection_logs`. */
  readonly projection: string
  readonly groupId: string
  readonly topic: string
  /**
   * Applies one batch inside a transaction (including its offsets) and returns the next offset
   * it stored, or undefined when every record was already applied. Unreadable records go to
   * `onPoison` and are skipped. `careful`: a first try failed on data Postgres refuses (see
   * transactCarefullyOnDataError); apply row by row and skip what is refused.
   */
  readonly apply: (tx: Tx, batch: Batch, onPoison: (offset: string, error: unknown) => void, careful: boolean) => Promise<bigint | undefined>
  /** Empties the read model (the runner removes its offsets), before a rebuild from offset 0. */
  readonly reset: (tx: Tx) => Promise<unknown>
}

/**
 * Before consuming: are the stored offsets about the log the broker has now? When the cluster id
 * differs from the one recorded with them, or an offset is beyond the log's end (the broker was
 * reset or replaced), the read model describes another log: it is emptied, its offsets removed,
 * and the projection rebuilds it from offset 0 — rather than skip the new log's first records as
 * "already applied". Returns why it rebuilt, if it did.
 */
const alignWithLog = (options: ProjectionOptions) =>
  Effect.gen(function*() {
    const { sql } = yield* Db
    const admin = yield* TopicAdmin
    // Stored offsets first, the log's end after: an offset stored meanwhile (by another instance)
    // can then never look beyond an end read before it.
    const { known, stored } = yield* query(async () => ({
      known: (await sql<Array<{ cluster_id: string }>>`
        SELECT cluster_id FROM projection_logs WHERE projection = ${options.projection} AND topic = ${options.topic}`)[0],
      stored: await sql<Array<{ partition: number; next_offset: string }>>`
        SELECT partition, next_offset FROM projection_offsets WHERE projection = ${options.projection} AND topic = ${options.topic}`
    }))
    const clusterId = yield* admin.clusterId
    const ends = new Map((yield* admin.endOffsets(options.topic)).map((o) => [o.partition, BigInt(o.offset)]))
    const beyond = stored.find((o) => BigInt(o.next_offset) > (ends.get(o.partition) ?? 0n))
    const reason = known !== undefined && known.cluster_id !== clusterId
      ? `the Kafka cluster changed (${known.cluster_id} -> ${clusterId})`
      : beyond !== undefined
      ? `stored offset ${beyond.next_offset} of partition ${beyond.partition} is beyond the log's end (${ends.get(beyond.partition) ?? 0n})`
      : undefined
    if (reason === undefined && known?.cluster_id === clusterId) return { reason: undefined, ends }
    // The group's committed offsets (where fetching resumes) go back to the start too. This fails
    // while another member is in the group; the whole step is then retried.
    if (reason !== undefined) yield* admin.resetGroupOffsets(options.groupId, options.topic)
    yield* query(() =>
      sql.begin(async (tx) => {
        await tx`SELECT pg_advisory_xact_lock(hashtext(${`orbit-projection-log:${options.projection}`}))`
        if (reason !== undefined) {
          await options.reset(tx)
          await tx`DELETE FROM projection_offsets WHERE projection = ${options.projection} AND topic = ${options.topic}`
        }
        await tx`
          INSERT INTO projection_logs (projection, topic, cluster_id) VALUES (${options.projection}, ${options.topic}, ${clusterId})
          ON CONFLICT (projection, topic) DO UPDATE SET cluster_id = EXCLUDED.cluster_id`
      })
    )
    return { reason, ends }
  })

/** Seconds buckets for one batch's transaction. */
const BATCH_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

const recordsApplied = Metric.counter("orbit_projection_records_applied_total", {
  description: "Records of fetched batches applied to a read model, per topic (poison records skipped are not counted)",
  incremental: true
})
const batchDuration = Metric.histogram("orbit_projection_batch_duration_seconds", {
  description: "Time to apply one fetched batch in its Postgres transaction",
  boundaries: BATCH_BUCKETS
})
const lagRecords = Metric.gauge("orbit_projection_lag_records", { description: "Records in the topic not yet applied to the read model" })
const lagSeconds = Metric.gauge("orbit_projection_lag_seconds", {
  description: "How long the oldest record not yet applied has been in the topic (0 when caught up)"
})
const rebuildProgress = Metric.gauge("orbit_projection_rebuild_progress_ratio", {
  description: "Share of the log re-applied by a rebuild from offset 0 (1 when no rebuild is running)"
})

/**
 * The projection's lag and rebuild gauges, sampled every `ORBIT_METRICS_SAMPLE_MS` (default 5 s)
 * from the topic's end offsets and the offsets stored in Postgres with the rows.
 */
const sampleLag = (options: ProjectionOptions, rebuildTarget: () => ReadonlyMap<number, bigint> | undefined, rebuilt: () => void) =>
  Effect.gen(function*() {
    const { sql } = yield* Db
    const admin = yield* TopicAdmin
    const sampleMs = yield* Config.Int("ORBIT_METRICS_SAMPLE_MS").pipe(Config.withDefault(5_000), Effect.orDie)
    const labels = { projection: options.label }
    const records = Metric.withAttributes(lagRecords, labels)
    const seconds = Metric.withAttributes(lagSeconds, labels)
    const progress = Metric.withAttributes(rebuildProgress, labels)
    yield* Metric.update(records, 0)
    yield* Metric.update(seconds, 0)
    yield* Metric.update(progress, 1)
    const ages = new BacklogAge()
    const sample = Effect.gen(function*() {
      const ends = yield* admin.endOffsets(options.topic)
      const stored = yield* query(() =>
        sql<Array<{ partition: number; next_offset: string }>>`
          SELECT partition, next_offset FROM projection_offsets WHERE projection = ${options.projection} AND topic = ${options.topic}`
      )
      const applied = new Map(stored.map((r) => [r.partition, BigInt(r.next_offset)]))
      const now = Date.now()
      let lag = 0n
      let oldestMs = 0
      for (const { partition, offset } of ends) {
        const end = BigInt(offset)
        const done = applied.get(partition) ?? 0n
        if (end > done) lag += end - done
        oldestMs = Math.max(oldestMs, ages.observe(String(partition), end, done, now))
      }
      yield* Metric.update(records, Number(lag))
      yield* Metric.update(seconds, oldestMs / 1_000)
      const target = rebuildTarget()
      if (target === undefined) return yield* Metric.update(progress, 1)
      let total = 0n
      let done = 0n
      for (const [partition, end] of target) {
        total += end
        const at = applied.get(partition) ?? 0n
        done += at < end ? at : end
      }
      if (done >= total) rebuilt()
      yield* Metric.update(progress, total === 0n || done >= total ? 1 : Number(done) / Number(total))
    }).pipe(Effect.catchCause((cause) => Effect.logDebug(`${options.name}: sampling lag failed; next time`, { cause: String(Cause.squash(cause)) })))
    // The first sample waits one interval: the service creates missing topics as it starts.
    const every = `${Math.max(100, sampleMs)} millis` as const
    yield* Effect.forkScoped(Effect.repeat(Effect.delay(sample, every), Schedule.forever))
  })

/**
 * One span per record of `batch` that carries a trace context (the producer's span as its
 * parent): the work of applying it, so `POST /api/v1/webhooks` → endpoint event → apply is one
 * trace. Every span of a batch covers the batch's one transaction.
 */
const startApplySpans = (options: ProjectionOptions, batch: Batch) =>
  Effect.forEach(batch.messages, (message) => {
    const parent = traceContextOf(message.headers)
    return parent === undefined ? Effect.succeed(undefined) : Effect.makeSpan("projection.apply", {
      parent: Tracer.externalSpan(parent),
      kind: "consumer",
      attributes: {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": batch.topic,
        "messaging.destination.partition.id": String(batch.partition),
        "messaging.kafka.offset": Number(message.offset),
        "orbit.projection": options.projection
      }
    })
  }).pipe(Effect.map((spans) => spans.filter((s) => s !== undefined)))

const endSpans = (spans: ReadonlyArray<Tracer.Span>, exit: Exit.Exit<unknown, unknown>) =>
  spans.length === 0 ? Effect.void : Effect.flatMap(Clock.currentTimeNanos, (now) => Effect.sync(() => {
    for (const span of spans) span.end(now, exit)
  }))

/**
 * The loop every projection shares: consume a topic as a consumer-group member, apply each
 * batch in one Postgres transaction, then commit the Kafka offset (only a hint of where to fetch;
 * Postgres holds the truth). A failed batch is fetched again; a crashed consumer is rebuilt.
 */
export const runProjection = (options: ProjectionOptions): Effect.Effect<void, never, Db | KafkaClient | TopicAdmin | Scope.Scope> =>
  Effect.gen(function*() {
    const { sql } = yield* Db
    const tracing = yield* References.TracerEnabled
    const appliedOnTopic = Metric.withAttributes(recordsApplied, { topic: options.topic })
    const batchTime = Metric.withAttributes(batchDuration, { projection: options.label })
    yield* Metric.update(appliedOnTopic, 0)
    yield* Metric.value(batchTime)
    // The end offsets a rebuild from offset 0 must reach (none when no rebuild is running).
    let rebuildTarget: ReadonlyMap<number, bigint> | undefined
    yield* sampleLag(options, () => rebuildTarget, () => {
      rebuildTarget = undefined
    })
    const handle = consumeBatches({
      groupId: options.groupId,
      topics: [options.topic],
      fromBeginning: true,
      // Batches are short database transactions, so a crashed member can be declared dead
      // quickly and its partitions handed to the restarted process.
      sessionTimeout: 10_000
    }).pipe(
      Stream.runForEach((consumed) =>
        Effect.gen(function*() {
          const { batch } = consumed
          const poison: Array<{ offset: string; error: string }> = []
          const spans = tracing ? yield* startApplySpans(options, batch) : []
          const started = performance.now()
          const next = yield* query(() =>
            transactCarefullyOnDataError(sql, (tx, careful) => {
              poison.length = 0
              return options.apply(tx, batch, (offset, error) => poison.push({ offset, error: String(error).slice(0, 500) }), careful)
            })
          ).pipe(Effect.onExit((exit) => endSpans(spans, exit)))
          yield* Metric.update(batchTime, (performance.now() - started) / 1_000)
          // A batch that was wholly applied before (fetched again after a crash) stores nothing: not counted.
          const applied = next === undefined ? 0 : batch.messages.length - poison.length
          if (applied > 0) yield* Metric.update(appliedOnTopic, applied)
          for (const p of poison) {
            yield* Effect.logWarning(`${options.name}: skipped an unreadable record`, { partition: batch.partition, ...p })
          }
          // Not awaited: the committed offset is only where a new member starts fetching (Postgres
          // holds the truth), and a Kafka round trip per batch would delay every read-your-writes
          // waiter of the next batch.
          yield* Effect.forkDetach(consumed.commit((BigInt(batch.lastOffset()) + 1n).toString()).pipe(Effect.ignore))
        }).pipe(
          Effect.matchCauseEffect({
            onSuccess: () => Deferred.succeed(consumed.done, undefined),
            // Failing the batch makes kafkajs fetch it again after a back-off (e.g. Postgres down).
            onFailure: (cause) =>
              Effect.logError(
                `${options.name}: applying a batch to Postgres failed; it is fetched from Kafka again and retried. ` +
                  "Check that Postgres (DATABASE_URL) is up and accepts writes; the cause follows",
                cause
              ).pipe(
                Effect.andThen(Deferred.fail(consumed.done, Cause.squash(cause)))
              )
          })
        )
      )
    )
    const aligned = alignWithLog(options).pipe(
      Effect.flatMap(({ reason, ends }) => {
        if (reason === undefined) return Effect.void
        rebuildTarget = new Map(ends)
        return Effect.logWarning(`${options.name}: the read model described another Kafka log; rebuilding it from offset 0`, { reason })
      })
    )
    yield* Effect.forkScoped(Effect.andThen(aligned, handle).pipe(
      Effect.tapCause((cause) => logKafkaRetry(`${options.name}: consumer stopped; starting a new one`, Cause.squash(cause))),
      Effect.retry(Schedule.spaced("1 second"))
    ))
    yield* Effect.logInfo(`${options.name} started`, { topic: options.topic })
  })
