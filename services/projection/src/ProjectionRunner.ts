import { Db, type Queryable, query, transactCarefullyOnDataError, type Tx } from "@orbit/db"
import { MetricsSampleMs } from "@orbit/runtime"
import { BacklogAge, consumeBatches, type KafkaClient, logKafkaRetry, TopicAdmin, traceContextOf } from "@orbit/kafka"
import { Cause, Clock, Deferred, Duration, Effect, type Exit, Metric, Queue, References, Schedule, type Scope, Semaphore, Stream, Tracer } from "effect"
import type { ConsumedBatch, KafkaMessage } from "@orbit/kafka"

/** Records of one partition, in offset order: one fetched batch, or several merged. */
export interface PartitionRecords {
  readonly topic: string
  readonly partition: number
  readonly messages: ReadonlyArray<KafkaMessage>
}

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
   * How many partitions' batches are applied at the same time, each in its own transaction on its
   * own connection (default 1). Above 1, `apply` must not depend on other partitions' batches being
   * applied before or after it. A partition's batches are always applied one at a time, in order.
   */
  readonly partitionsConcurrently?: number
  /**
   * How long a partition's worker waits, once records have arrived, for more to apply in the same
   * transaction (default: none, they are applied at once). For a read model nobody waits on
   * record by record: under load it is written in fewer, larger transactions.
   */
  readonly gather?: Duration.Input
  /**
   * Applies one batch inside a transaction (including its offsets) and returns the next offset
   * it stored, or undefined when every record was already applied. Unreadable records go to
   * `onPoison` and are skipped. `careful`: a first try failed on data Postgres refuses (see
   * transactCarefullyOnDataError); apply row by row and skip what is refused.
   */
  readonly apply: (tx: Tx, batch: PartitionRecords, onPoison: (offset: string, error: unknown) => void, careful: boolean) => Promise<bigint | undefined>
  /** Empties the read model (the runner removes its offsets), before a rebuild from offset 0. */
  readonly reset: (tx: Tx) => Promise<unknown>
}

/** The offsets the projection stored for its topic, one row per partition applied. */
const selectStoredOffsets = (sql: Queryable, options: ProjectionOptions) =>
  sql<Array<{ partition: number; next_offset: string }>>`
    SELECT partition, next_offset FROM projection_offsets WHERE projection = ${options.projection} AND topic = ${options.topic}`

/**
 * Moves the group's committed offsets back to the stored ones where they are past them (see
 * `alignWithLog`). The group's offsets are read before the stored ones: a running member stores an
 * offset before it commits it, so only a Postgres that lost offsets can show one past them.
 */
const resumeFromStored = (options: ProjectionOptions) =>
  Effect.gen(function*() {
    const { sql } = yield* Db
    const admin = yield* TopicAdmin
    const positions = (yield* admin.groupPositions(options.groupId, [options.topic])).get(options.topic) ?? []
    const stored = new Map((yield* query(() => selectStoredOffsets(sql, options))).map((o) => [o.partition, BigInt(o.next_offset)]))
    const ahead = positions
      .map((p) => ({ partition: p.partition, offset: stored.get(p.partition) ?? 0n, committed: p.committed }))
      .filter((p) => p.committed > p.offset)
      .map((p) => ({ partition: p.partition, offset: String(p.offset), committed: String(p.committed) }))
    if (ahead.length === 0) return
    yield* admin.setGroupOffsets(options.groupId, options.topic, ahead.map(({ partition, offset }) => ({ partition, offset }))).pipe(
      Effect.andThen(Effect.logWarning(`${options.name}: the consumer group was past the offsets stored in Postgres; resuming from them`, { partitions: ahead })),
      Effect.catch((error) =>
        Effect.logWarning(`${options.name}: the consumer group is past the offsets stored in Postgres and could not be moved back (another member runs); the records in between are applied at a start without other members`, {
          partitions: ahead,
          error: String(error).slice(0, 300)
        })
      )
    )
  })

/**
 * Before consuming: are the stored offsets about the log the broker has now? When the cluster id
 * differs from the one recorded with them, or an offset is beyond the log's end (the broker was
 * reset or replaced), the read model describes another log: it is emptied, its offsets removed,
 * and the projection rebuilds it from offset 0 — rather than skip the new log's first records as
 * "already applied". Returns why it rebuilt, if it did.
 *
 * Otherwise the stored offsets are where fetching resumes: the group's committed offsets are only
 * a hint, written after each transaction. Where one is past the stored offset (Postgres restored
 * from an older backup), fetching from it would skip the records in between for good, so the
 * group is moved back to the stored offsets. That needs a memberless group: while another member
 * runs, the move is left to the next start and a warning says so.
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
      stored: await selectStoredOffsets(sql, options)
    }))
    const clusterId = yield* admin.clusterId
    const ends = new Map((yield* admin.endOffsets(options.topic)).map((o) => [o.partition, BigInt(o.offset)]))
    const beyond = stored.find((o) => BigInt(o.next_offset) > (ends.get(o.partition) ?? 0n))
    const reason = known !== undefined && known.cluster_id !== clusterId
      ? `the Kafka cluster changed (${known.cluster_id} -> ${clusterId})`
      : beyond !== undefined
      ? `stored offset ${beyond.next_offset} of partition ${beyond.partition} is beyond the log's end (${ends.get(beyond.partition) ?? 0n})`
      : undefined
    if (reason === undefined) yield* resumeFromStored(options)
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

/** Fetched batches one partition holds before fetching waits for its transactions. */
const MAX_QUEUED_BATCHES = 16

/** Queued batches of one partition applied together in one transaction at most. */
const MAX_BATCHES_PER_TRANSACTION = 8
/**
 * How long after a transaction its partition's Kafka offset is committed, with whatever later
 * transactions stored by then: one commit per partition per interval, not one per transaction.
 * The committed offset is only where a new member starts fetching; records it fetches again are
 * already stored and skipped.
 */
const COMMIT_DELAY = Duration.seconds(1)

/**
 * One partition's Kafka offset commits, coalesced: the first offset given schedules a commit
 * `delay` later, which sends the last offset given by then (`test/CoalescedCommits.test.ts`).
 */
export const coalescedCommits = (delay: Duration.Input) => {
  let uncommitted: { readonly commit: ConsumedBatch["commit"]; readonly offset: string } | undefined
  const commitLater = Effect.suspend(() => {
    const { commit, offset } = uncommitted!
    uncommitted = undefined
    return commit(offset)
  }).pipe(Effect.delay(delay), Effect.ignore)
  return (commit: ConsumedBatch["commit"], offset: string): Effect.Effect<void> =>
    Effect.suspend(() => {
      const scheduled = uncommitted !== undefined
      uncommitted = { commit, offset }
      return scheduled ? Effect.void : Effect.asVoid(Effect.forkDetach(commitLater))
    })
}

/**
 * Applies consumers' batches with `apply`, each partition's in offset order and partitions side by
 * side; returns the function that feeds it a consumer's stream (a restarted consumer feeds the same
 * queues, so a partition never has two transactions at once). Each partition's fetched batches wait
 * in a queue of their own (at most `queued`), and a batch is done for kafkajs once queued, so
 * fetching goes on while transactions run: a slow partition holds up only itself (and, once its
 * queue is full, the fetching). A fiber per partition, in the caller's scope, takes everything
 * queued (at most `merged` batches) and applies it as one run of records; records the run already
 * holds are dropped, so its offsets stay increasing. With `gather`, a worker that finds fewer than
 * `merged` batches waits that long for more before applying them. `apply` handles its own failures.
 */
export const partitionWorkers = <R>(
  options: { readonly queued: number; readonly merged: number; readonly gather?: Duration.Input | undefined },
  apply: (records: PartitionRecords, taken: ReadonlyArray<ConsumedBatch>) => Effect.Effect<void, never, R>
) =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const context = yield* Effect.context<R>()
    const partitions = new Map<number, Queue.Queue<ConsumedBatch>>()
    const worker = (queue: Queue.Queue<ConsumedBatch>) =>
      Effect.gen(function*() {
        let taken: ReadonlyArray<ConsumedBatch> = yield* Queue.takeBetween(queue, 1, options.merged)
        if (options.gather !== undefined && taken.length < options.merged) {
          yield* Effect.sleep(options.gather)
          // What arrived meanwhile, without waiting (a minimum of 0 would take nothing).
          const arrived = Math.min(yield* Queue.size(queue), options.merged - taken.length)
          if (arrived > 0) taken = [...taken, ...yield* Queue.takeBetween(queue, arrived, arrived)]
        }
        const first = taken[0]!.batch
        const messages: Array<KafkaMessage> = []
        let last = -1n
        for (const { batch } of taken) {
          for (const m of batch.messages) {
            const offset = BigInt(m.offset)
            if (offset > last) {
              messages.push(m)
              last = offset
            }
          }
        }
        yield* apply({ topic: first.topic, partition: first.partition, messages }, taken)
      }).pipe(Effect.forever, Effect.provideContext(context))
    return <E, R2>(consumed: Stream.Stream<ConsumedBatch, E, R2>): Effect.Effect<void, E, R2> =>
      Stream.runForEach(consumed, (batch) =>
        Effect.gen(function*() {
          let queue = partitions.get(batch.batch.partition)
          if (queue === undefined) {
            queue = yield* Queue.bounded<ConsumedBatch>(options.queued)
            partitions.set(batch.batch.partition, queue)
            yield* Effect.forkIn(worker(queue), scope)
          }
          yield* Queue.offer(queue, batch)
          yield* Deferred.succeed(batch.done, undefined)
        }))
  })

/** When a batch's failed transaction is tried again: exponential back-off, capped, until it commits. */
export const transactionRetries = Schedule.exponential("100 millis").pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(2))))
)

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
 * The projection's lag and rebuild gauges, sampled every `ORBIT_METRICS_SAMPLE_MS` (default 15 s)
 * from the topic's end offsets and the offsets stored in Postgres with the rows.
 */
const sampleLag = (options: ProjectionOptions, rebuildTarget: () => ReadonlyMap<number, bigint> | undefined, rebuilt: () => void) =>
  Effect.gen(function*() {
    const { sql } = yield* Db
    const admin = yield* TopicAdmin
    const sampleMs = yield* MetricsSampleMs.pipe(Effect.orDie)
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
const startApplySpans = (options: ProjectionOptions, batch: PartitionRecords) =>
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
 * partition's batches in Postgres transactions, then commit the Kafka offset (only a hint of where
 * to fetch; Postgres holds the truth). Fetching goes on while transactions run; a failed
 * transaction is tried again; a crashed consumer is rebuilt. With `partitionsConcurrently` above 1
 * partitions are applied side by side, so a slow partition does not hold up the others (nor their
 * read-your-writes waiters).
 */
export const runProjection = (options: ProjectionOptions): Effect.Effect<void, never, Db | KafkaClient | TopicAdmin | Scope.Scope> =>
  Effect.gen(function*() {
    const { sql } = yield* Db
    const tracing = yield* References.TracerEnabled
    const appliedOnTopic = Metric.withAttributes(recordsApplied, { topic: options.topic })
    const batchTime = Metric.withAttributes(batchDuration, { projection: options.label })
    const concurrency = Math.max(1, options.partitionsConcurrently ?? 1)
    yield* Metric.update(appliedOnTopic, 0)
    yield* Metric.value(batchTime)
    // The end offsets a rebuild from offset 0 must reach (none when no rebuild is running).
    let rebuildTarget: ReadonlyMap<number, bigint> | undefined
    yield* sampleLag(options, () => rebuildTarget, () => {
      rebuildTarget = undefined
    })
    // One transaction per partition at a time; at most `concurrency` of them at once.
    const permits = yield* Semaphore.make(concurrency)

    /** Applies one partition's records in one transaction; the next offset stored, if any. */
    const applyRecords = (batch: PartitionRecords) =>
      Effect.gen(function*() {
        const poison: Array<{ offset: string; error: string }> = []
        const spans = tracing ? yield* startApplySpans(options, batch) : []
        const started = performance.now()
        const next = yield* query(() =>
          transactCarefullyOnDataError(sql, (tx, careful) => {
            poison.length = 0
            return options.apply(tx, batch, (offset, error) => poison.push({ offset, error: String(error).slice(0, 500) }), careful)
          })
        ).pipe(Effect.onExit((exit) => endSpans(spans, exit)), permits.withPermits(1))
        yield* Metric.update(batchTime, (performance.now() - started) / 1_000)
        // Records wholly applied before (fetched again after a crash) store nothing: not counted.
        const applied = next === undefined ? 0 : batch.messages.length - poison.length
        if (applied > 0) yield* Metric.update(appliedOnTopic, applied)
        for (const p of poison) {
          yield* Effect.logWarning(`${options.name}: skipped an unreadable record`, { partition: batch.partition, ...p })
        }
      })

    // A failed transaction is tried again with the same records until it commits (e.g. while
    // Postgres is down); nothing behind it in the partition is applied meanwhile. The Kafka offset
    // commit after it (only where a new member starts fetching; Postgres holds the truth) is not
    // awaited, and comes at most once per COMMIT_DELAY.
    const commits = new Map<number, ReturnType<typeof coalescedCommits>>()
    const feed = yield* partitionWorkers(
      { queued: MAX_QUEUED_BATCHES, merged: MAX_BATCHES_PER_TRANSACTION, gather: options.gather },
      (records, taken) =>
        Effect.gen(function*() {
          yield* applyRecords(records).pipe(
            Effect.tapCause((cause) =>
              Effect.logError(
                `${options.name}: applying a batch to Postgres failed; it is tried again. ` +
                  "Check that Postgres (DATABASE_URL) is up and accepts writes; the cause follows",
                cause
              )
            ),
            Effect.retry(transactionRetries),
            Effect.orDie
          )
          if (records.messages.length === 0) return
          let commit = commits.get(records.partition)
          if (commit === undefined) commits.set(records.partition, commit = coalescedCommits(COMMIT_DELAY))
          const lastOffset = records.messages[records.messages.length - 1]!.offset
          yield* commit(taken[taken.length - 1]!.commit, (BigInt(lastOffset) + 1n).toString())
        })
    )
    const handle = feed(consumeBatches({
      groupId: options.groupId,
      topics: [options.topic],
      fromBeginning: true,
      // Batches are short database transactions, so a crashed member can be declared dead
      // quickly and its partitions handed to the restarted process.
      sessionTimeout: 10_000
    }))
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
