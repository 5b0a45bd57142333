import { randomUUID } from "node:crypto"
import { decodeEndpointEvent, type Endpoint, evolve, type Mode, subscribes, topicsFor } from "@orbit/domain"
import { consumeBatches, KafkaClient, KafkaUnavailable } from "@orbit/kafka"
import { Context, Deferred, Effect, Layer, Schedule, Schema, Stream } from "effect"
import { makeEndOffsets } from "./EndOffsets.ts"

/** How long a caller waits for the index to catch up before giving up (and retrying later). */
const SYNC_TIMEOUT_MS = 10_000

/**
 * Back-to-back measurements start at least this far apart. Fan-out does not wait for the sync
 * before producing (see FanOut), only before committing, so a little spacing costs no latency
 * and saves the broker hundreds of offset requests per second under load.
 */
const MIN_MEASUREMENT_SPACING_MS = 20

export class SyncTimeout extends Schema.TaggedError<SyncTimeout>()("SyncTimeout", {
  message: Schema.String
}) {}

/** The in-memory endpoint state, folded with the pure `evolve` (no I/O). */
export class EndpointTable {
  private readonly byId = new Map<string, Endpoint>()
  /** Incremented by every applied event. */
  version = 0
  private readonly byScope = new Map<string, Set<string>>()

  apply(event: Parameters<typeof evolve>[1]): void {
    this.version++
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

  /**
   * Active endpoints of (tenant, mode) subscribed to `type` or `"*"`; with `only`, that one
   * endpoint if it is active and of (tenant, mode), whatever types it subscribes to (an event
   * addressed to one endpoint, such as a test event).
   */
  matching(tenantId: string, mode: Mode, type: string, only?: string): ReadonlyArray<Endpoint> {
    if (only !== undefined) {
      const endpoint = this.byId.get(only)
      return endpoint !== undefined && subscribes(endpoint, tenantId, mode, type, true) ? [endpoint] : []
    }
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
 * moment it was taken: at most one is in flight, callers that arrive meanwhile share the next one
 * (started ≥ 20 ms after the previous one), and once a measurement is reached, callers with an
 * earlier `t` return at once. So the broker sees at most ~50 offsets requests per second however
 * many batches arrive.
 */
export class EndpointIndex extends Context.Service<EndpointIndex, {
  get(id: string): Endpoint | undefined
  matching(tenantId: string, mode: Mode, type: string, only?: string): ReadonlyArray<Endpoint>
  /** Changes whenever an endpoint event is applied (so a caller can tell the index moved). */
  version(): number
  /** Waits until the index has applied the topic up to its end offsets measured at or after `sinceMs`. */
  sync(sinceMs: number): Effect.Effect<void, KafkaUnavailable | SyncTimeout>
  /** The same as a promise (rejects with KafkaUnavailable or SyncTimeout). */
  syncNow(sinceMs: number): Promise<void>
}>()("@orbit/dispatcher/EndpointIndex") {
  /** Built once the index has caught up with the topic as it was at start. */
  static readonly layer = Layer.effect(
    EndpointIndex,
    Effect.gen(function*() {
      const { kafka, brokers, topicPrefix } = yield* KafkaClient
      const probe = makeEndOffsets(kafka, brokers)
      yield* Effect.addFinalizer(() => Effect.promise(() => probe.close()))
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
        const target = await probe.endOffsets(topic)
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
        // A measurement not started yet starts after this call: it covers the caller.
        if (next !== undefined) return next
        if (inflight === undefined) return start()
        if (inflight.startedAt > sinceMs) return inflight.done
        // The one in flight was measured too early for this caller: share the next one, started
        // when this one ends but not sooner than MIN_MEASUREMENT_SPACING_MS after it started.
        const previous = inflight
        next = previous.done.catch(() => undefined).then(async () => {
          const wait = previous.startedAt + MIN_MEASUREMENT_SPACING_MS - Date.now()
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
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
        matching: (tenantId, mode, type, only) => table.matching(tenantId, mode, type, only),
        version: () => table.version,
        sync,
        syncNow
      })
    })
  )
}
