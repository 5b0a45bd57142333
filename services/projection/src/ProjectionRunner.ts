import { Db, query, transactCarefullyOnDataError, type Tx } from "@orbit/db"
import { consumeBatches, type KafkaClient } from "@orbit/kafka"
import { Cause, Deferred, Effect, Schedule, type Scope, Stream } from "effect"
import type { Batch } from "kafkajs"

export interface ProjectionOptions {
  /** For logs. */
  readonly name: string
  readonly groupId: string
  readonly topic: string
  /**
   * Applies one batch inside a transaction (including its offsets) and returns the next offset
   * it stored, or undefined when every record was already applied. Unreadable records go to
   * `onPoison` and are skipped. `careful`: a first try failed on data Postgres refuses (see
   * transactCarefullyOnDataError); apply row by row and skip what is refused.
   */
  readonly apply: (tx: Tx, batch: Batch, onPoison: (offset: string, error: unknown) => void, careful: boolean) => Promise<unknown>
}

/**
 * The loop every projection shares: consume a topic as a consumer-group member, apply each
 * batch in one Postgres transaction, then commit the Kafka offset (only a hint of where to fetch;
 * Postgres holds the truth). A failed batch is fetched again; a crashed consumer is rebuilt.
 */
export const runProjection = (options: ProjectionOptions): Effect.Effect<void, never, Db | KafkaClient | Scope.Scope> =>
  Effect.gen(function*() {
    const { sql } = yield* Db
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
          yield* query(() =>
            transactCarefullyOnDataError(sql, (tx, careful) => {
              poison.length = 0
              return options.apply(tx, batch, (offset, error) => poison.push({ offset, error: String(error).slice(0, 500) }), careful)
            })
          )
          for (const p of poison) {
            yield* Effect.logWarning(`${options.name}: skipped an unreadable record`, { partition: batch.partition, ...p })
          }
          yield* consumed.commit((BigInt(batch.lastOffset()) + 1n).toString()).pipe(Effect.ignore)
        }).pipe(
          Effect.matchCauseEffect({
            onSuccess: () => Deferred.succeed(consumed.done, undefined),
            // Failing the batch makes kafkajs fetch it again after a back-off (e.g. Postgres down).
            onFailure: (cause) =>
              Effect.logError(`${options.name}: batch failed; it will be retried`, cause).pipe(
                Effect.andThen(Deferred.fail(consumed.done, Cause.squash(cause)))
              )
          })
        )
      )
    )
    yield* Effect.forkScoped(handle.pipe(
      Effect.tapCause((cause) =>
        Effect.logWarning(`${options.name}: consumer stopped; starting a new one`, { cause: String(Cause.squash(cause)) })
      ),
      Effect.retry(Schedule.spaced("1 second"))
    ))
    yield* Effect.logInfo(`${options.name} started`, { topic: options.topic })
  })
