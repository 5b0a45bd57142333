import { randomUUID } from "node:crypto"
import { decodeEndpointEvent, type Endpoint, evolve, type Mode, subscribes, topicsFor } from "@orbit/domain"
import { consumeBatches, KafkaClient, KafkaUnavailable, TopicAdmin } from "@orbit/kafka"
import { Context, Deferred, Effect, Layer, Schedule, Schema, Stream } from "effect"

/** How long a caller waits for the index to catch up before giving up (and retrying later). */
const SYNC_TIMEOUT_MS = 10_000

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
 *
 * One measurement of the topic's end offsets serves every caller whose `t` is not later than the
 * moment it was taken: at most one is in flight, callers that arrive meanwhile share the next one,
 * and once a measurement is reached, callers with an earlier `t` return at once. So the broker sees
 * about one offsets request per round trip however many batches arrive.
 */
export class EndpointIndex extends Context.Service<EndpointIndex, {
  get(id: string): Endpoint | undefined
  matching(tenantId: string, mode: Mode, type: string): ReadonlyArray<Endpoint>
  /** Waits until the index has applied the topic up to its end offsets measured at or after `sinceMs`. */
  sync(sinceMs: number): Effect.Effect<void, KafkaUnavailable | SyncTimeout>
  /** The same as a promise (rejects with KafkaUnavailable or SyncTimeout). */
  syncNow(sinceMs: number): Promise<void>
}>()("@orbit/dispatcher/EndpointIndex") {
  /** Built once the index has caught up with the topic as it was at start. */
  static readonly layer = Layer.effect(
    EndpointIndex,
    Effect.gen(function*() {
      const { topicPrefix } = yield* KafkaClient
      const admin = yield* TopicAdmin
      const run = Effect.runPromiseWith(yield* Effect.context<never>())
      const topic = topicsFor(topicPrefix).endpointEvents.name
      const table = new EndpointTable()
      /** Next offset to apply, per partition. */
      const applied = new Map<number, bigint>()
      type Target = ReadonlyArray<{ partition: number; offset: string }>
      const waiters = new Set<{ readonly target: Target; readonly done: () => void }>()
      const reached = (target: Target) => target.every((t) => (applied.get(t.partition) ?? 0n) >= BigInt(t.offset))
      const wake = () => {
        for (const w of waiters) {
          if (reached(w.target)) {
            waiters.delete(w)
            w.done()
          }
        }
      }

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
            wake()
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

      /** Measures the end offsets now, then waits until the index has applied them. */
      const barrier = async (): Promise<void> => {
        const target = await run(admin.endOffsets(topic))
        if (reached(target)) return
        await new Promise<void>((resolve, reject) => {
          const waiter = {
            target,
            done: () => {
              clearTimeout(timer)
              resolve()
            }
          }
          const timer = setTimeout(() => {
            waiters.delete(waiter)
            reject(new SyncTimeout({ message: `endpoint index did not catch up within ${SYNC_TIMEOUT_MS / 1000} seconds` }))
          }, SYNC_TIMEOUT_MS)
          waiters.add(waiter)
        })
      }

      /** Start time of the newest measurement known to be reached. */
      let reachedAt = Number.NEGATIVE_INFINITY
      let inflight: { readonly startedAt: number; readonly done: Promise<void> } | undefined
      let next: Promise<void> | undefined
      const start = (): Promise<void> => {
        const startedAt = Date.now()
        const done = barrier().then(() => {
          reachedAt = Math.max(reachedAt, startedAt)
        })
        const current = { startedAt, done }
        inflight = current
        void done.finally(() => {
          if (inflight === current) inflight = undefined
        }).catch(() => undefined)
        return done
      }

      // Strictly later: a measurement started in the same millisecond as `sinceMs` may predate it.
      const syncNow = (sinceMs: number): Promise<void> => {
        if (reachedAt > sinceMs) return Promise.resolve()
        if (inflight === undefined) return start()
        if (inflight.startedAt > sinceMs) return inflight.done
        // The one in flight was measured too early for this caller: share the next one.
        next ??= inflight.done.catch(() => undefined).then(() => {
          next = undefined
          return start()
        })
        return next
      }

      const sync = Effect.fn("EndpointIndex.sync")((sinceMs: number) =>
        Effect.tryPromise({
          try: () => syncNow(sinceMs),
          catch: (e) => e instanceof SyncTimeout || e instanceof KafkaUnavailable ? e : new SyncTimeout({ message: String(e) })
        })
      )

      const started = Date.now()
      yield* sync(started).pipe(
        Effect.tapError((e) => Effect.logWarning("endpoint index not caught up yet; retrying", { error: String(e) })),
        Effect.retry(Schedule.spaced("1 second"))
      )
      yield* Effect.logInfo("endpoint index ready", { topic, endpoints: table.size, ms: Date.now() - started })

      return EndpointIndex.of({
        get: (id) => table.get(id),
        matching: (tenantId, mode, type) => table.matching(tenantId, mode, type),
        sync,
        syncNow
      })
    })
  )
}
