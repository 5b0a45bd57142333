import { randomUUID } from "node:crypto"
import { decodeEndpointEvent, type Endpoint, evolve, type Mode, subscribes, topicsFor } from "@orbit/domain"
import { consumeBatches, KafkaClient, type KafkaUnavailable, TopicAdmin } from "@orbit/kafka"
import { Context, Deferred, Effect, Layer, Schedule, Schema, Stream } from "effect"

/** How long a caller waits for the index to catch up before giving up (and retrying later). */
const SYNC_TIMEOUT = "10 seconds"

export class SyncTimeout extends Schema.TaggedError<SyncTimeout>()("SyncTimeout", {
  message: Schema.String
}) {}

/** The in-memory endpoint state, folded with the pure `evolve` (no I/O). */
export class EndpointTable {
  private readonly byId = new Map<string, Endpoint>()
  private readonly byScope = new Map<string, Set<string>>()

  apply(event: Parameters<typeof evolve>[1]): void {
    const before = this.byId.get(event.endpoint_id)
    const after = evolve(before, event)
    if (before !== undefined) this.byScope.get(scopeKey(before.tenant_id, before.mode))?.delete(before.id)
    if (after === undefined) {
      this.byId.delete(event.endpoint_id)
      return
    }
    this.byId.set(after.id, after)
    const key = scopeKey(after.tenant_id, after.mode)
    let ids = this.byScope.get(key)
    if (ids === undefined) this.byScope.set(key, ids = new Set())
    ids.add(after.id)
  }

  get(id: string): Endpoint | undefined {
    return this.byId.get(id)
  }

  /** Active endpoints of (tenant, mode) subscribed to `type` or `"*"`. */
  matching(tenantId: string, mode: Mode, type: string): ReadonlyArray<Endpoint> {
    const ids = this.byScope.get(scopeKey(tenantId, mode))
    if (ids === undefined) return []
    const out: Array<Endpoint> = []
    for (const id of ids) {
      const endpoint = this.byId.get(id)!
      if (subscribes(endpoint, tenantId, mode, type)) out.push(endpoint)
    }
    return out
  }

  get size(): number {
    return this.byId.size
  }
}

const scopeKey = (tenantId: string, mode: Mode) => `${mode}\u0000${tenantId}`

/**
 * Every endpoint, kept current from `webhooks.endpoint-events` (read from offset 0 by a consumer
 * group unique to this process, never committed). Readers call `sync(t)` to wait until the index
 * includes every endpoint event appended before time `t`: an endpoint whose registration returned
 * 201 before an event was published is then guaranteed to be matched.
 */
export class EndpointIndex extends Context.Service<EndpointIndex, {
  get(id: string): Endpoint | undefined
  matching(tenantId: string, mode: Mode, type: string): ReadonlyArray<Endpoint>
  /** Waits until the index has applied the topic up to its end offsets measured at or after `sinceMs`. */
  sync(sinceMs: number): Effect.Effect<void, KafkaUnavailable | SyncTimeout>
}>()("@orbit/dispatcher/EndpointIndex") {
  /** Built once the index has caught up with the topic as it was at start. */
  static readonly layer = Layer.effect(
    EndpointIndex,
    Effect.gen(function*() {
      const { topicPrefix } = yield* KafkaClient
      const admin = yield* TopicAdmin
      const topic = topicsFor(topicPrefix).endpointEvents.name
      const table = new EndpointTable()
      /** Next offset to apply, per partition. */
      const applied = new Map<number, bigint>()
      const waiters = new Set<{ readonly target: ReadonlyArray<{ partition: number; offset: string }>; readonly done: Deferred.Deferred<void> }>()
      const reached = (target: ReadonlyArray<{ partition: number; offset: string }>) =>
        target.every((t) => (applied.get(t.partition) ?? 0n) >= BigInt(t.offset))
      const wake = Effect.suspend(() =>
        Effect.forEach([...waiters], (w) =>
          reached(w.target)
            ? Effect.sync(() => waiters.delete(w)).pipe(Effect.andThen(Deferred.succeed(w.done, undefined)))
            : Effect.void, { discard: true }))

      const consume = consumeBatches({
        groupId: `${topicPrefix}orbit-dispatcher-index.${randomUUID()}`,
        topics: [topic],
        fromBeginning: true
      }).pipe(
        Stream.runForEach(({ batch, done }) =>
          Effect.gen(function*() {
            for (const message of batch.messages) {
              try {
                table.apply(decodeEndpointEvent(message.value?.toString("utf8") ?? ""))
              } catch (error) {
                yield* Effect.logWarning("skipped an unreadable endpoint event", {
                  partition: batch.partition,
                  offset: message.offset,
                  error: String(error).slice(0, 300)
                })
              }
            }
            applied.set(batch.partition, BigInt(batch.lastOffset()) + 1n)
            yield* wake
            yield* Deferred.succeed(done, undefined)
          })
        )
      )
      yield* Effect.forkScoped(
        consume.pipe(
          Effect.tapError((e) => Effect.logWarning("endpoint index consumer failed; restarting", { error: String(e) })),
          Effect.retry(Schedule.spaced("1 second"))
        )
      )

      let barrier: { readonly measuredAt: number; readonly wait: Effect.Effect<void, KafkaUnavailable | SyncTimeout> } | undefined
      const makeBarrier = (measuredAt: number) =>
        Effect.gen(function*() {
          const target = yield* admin.endOffsets(topic)
          const done = yield* Deferred.make<void>()
          const waiter = { target, done }
          // Check and register in one step, so a batch applied in between cannot be missed.
          const already = yield* Effect.sync(() => {
            if (reached(target)) return true
            waiters.add(waiter)
            return false
          })
          if (already) return
          yield* Deferred.await(done).pipe(
            Effect.timeoutOrElse({
              duration: SYNC_TIMEOUT,
              orElse: () => Effect.fail(new SyncTimeout({ message: `endpoint index did not catch up within ${SYNC_TIMEOUT}` }))
            }),
            Effect.ensuring(Effect.sync(() => waiters.delete(waiter)))
          )
        })

      // Concurrent callers share one barrier when it was measured late enough for them.
      const sync = Effect.fn("EndpointIndex.sync")(function*(sinceMs: number) {
        if (barrier === undefined || barrier.measuredAt < sinceMs) {
          const measuredAt = Date.now()
          const wait = yield* Effect.cached(makeBarrier(measuredAt))
          barrier = { measuredAt, wait }
        }
        const current = barrier
        yield* current.wait.pipe(
          Effect.tapError(() => Effect.sync(() => { if (barrier === current) barrier = undefined }))
        )
      })

      const started = Date.now()
      yield* sync(started).pipe(
        Effect.tapError((e) => Effect.logWarning("endpoint index not caught up yet; retrying", { error: String(e) })),
        Effect.retry(Schedule.spaced("1 second"))
      )
      yield* Effect.logInfo("endpoint index ready", { topic, endpoints: table.size, ms: Date.now() - started })

      return EndpointIndex.of({
        get: (id) => table.get(id),
        matching: (tenantId, mode, type) => table.matching(tenantId, mode, type),
        sync
      })
    })
  )
}

