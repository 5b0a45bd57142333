import { randomUUID } from "node:crypto"
import { decodeEndpointEvent, type Endpoint, evolve, type Mode, subscribes, topicsFor } from "@orbit/domain"
import { consumeBatches, KafkaClient, KafkaUnavailable, logKafkaRetry, makeEndOffsets } from "@orbit/kafka"
import { Context, Deferred, Effect, Layer, Schedule, Schema, Stream } from "effect"

/** How long a caller waits for the index to catch up before giving up (and retrying later). */
const SYNC_TIMEOUT_MS = 10_000

/**
 * Back-to-back measurements start at least this far apart, which bounds the offsets requests a
 * steady stream of records sends the broker (1000 / this per second). Fan-out waits for its
 * measurement before producing, so this also bounds the latency it adds under load.
 */
const MIN_MEASUREMENT_SPACING_MS = 5

export class SyncTimeout extends Schema.TaggedError<SyncTimeout>()("SyncTimeout", {
  message: Schema.String
}) {}

/** Positions in `webhooks.endpoint-events`: per partition, the offset of the next record to apply. */
export type IndexOffsets = ReadonlyArray<{ readonly partition: number; readonly offset: string }>

/**
 * Header of a delivery task (and of its retries): the endpoint-topic offsets the fan-out's index
 * had applied when it matched the event. Whoever takes the task applies them too before deciding
 * whether to deliver it and how to sign it.
 */
export const INDEX_OFFSETS_HEADER = "orbit-index-offsets"

/** `0:12,1:7,2:0` (pure). */
export const encodeIndexOffsets = (offsets: IndexOffsets): string =>
  offsets.map((p) => `${p.partition}:${p.offset}`).join(",")

/** The offsets of an `orbit-index-offsets` header, or undefined when absent or unreadable (pure). */
export const decodeIndexOffsets = (header: string): IndexOffsets | undefined => {
  const out: Array<{ partition: number; offset: string }> = []
  for (const part of header.split(",")) {
    const match = /^(\d+):(\d+)$/.exec(part)
    if (match === null) return undefined
    out.push({ partition: Number(match[1]), offset: match[2]! })
  }
  return out
}

/**
 * One shared copy of each distinct value: most endpoints of an installation share their
 * subscriptions, retry policy and (empty) headers, and a tenant's endpoints share its id, so the
 * index keeps one of each rather than one per endpoint. A value stays here once seen (there are at
 * most as many as endpoints ever indexed).
 */
class Interned {
  private readonly strings = new Map<string, string>()
  private readonly values = new Map<string, unknown>()

  string(s: string): string {
    const held = this.strings.get(s)
    if (held !== undefined) return held
    this.strings.set(s, s)
    return s
  }

  value<A>(v: A): A {
    const key = JSON.stringify(v)
    const held = this.values.get(key)
    if (held !== undefined) return held as A
    this.values.set(key, v)
    return v
  }

  endpoint(e: Endpoint): Endpoint {
    return {
      ...e,
      tenant_id: this.string(e.tenant_id),
      events: this.value(e.events),
      retry_policy: this.value(e.retry_policy),
      headers: this.value(e.headers)
    }
  }
}

/** The in-memory endpoint state, folded with the pure `evolve` (no I/O). */
export class IndexedEndpoints {
  private readonly byId = new Map<string, Endpoint>()
  private readonly byScope = new Map<string, Set<string>>()
  private readonly interned = new Interned()

  apply(event: Parameters<typeof evolve>[1]): void {
    const before = this.byId.get(event.endpoint_id)
    const evolved = evolve(before, event)
    if (before !== undefined) this.byScope.get(scopeKey(before.tenant_id, before.mode))?.delete(before.id)
    if (evolved === undefined) {
      this.byId.delete(event.endpoint_id)
      return
    }
    const after = evolved === before ? before : this.interned.endpoint(evolved)
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
 * group unique to this process, never committed).
 *
 * Read-your-writes: `syncNow()` measures the topic's end offsets *after* it is called and waits
 * until the index has applied them, so every endpoint event acknowledged before the call (a
 * registration, rotation, update or deletion that returned 2xx) is in the index when it returns.
 * It returns the offsets it waited for; `catchUpNow(offsets)` waits for such offsets without
 * measuring (another process's index reached them when it matched an event).
 *
 * Measurements are shared: a call joins the next measurement not sent yet. That one is sent on
 * the next turn of the event loop (so every record of a fetched batch shares it) and at least
 * MIN_MEASUREMENT_SPACING_MS after the previous one, without waiting for it to return. Each is one ListOffsets round trip
 * (`@orbit/kafka`'s `makeEndOffsets`).
 */
export class EndpointIndex extends Context.Service<EndpointIndex, {
  get(id: string): Endpoint | undefined
  matching(tenantId: string, mode: Mode, type: string, only?: string): ReadonlyArray<Endpoint>
  /** Waits until the index has applied the topic up to its end offsets measured after this call; returns them. */
  sync(): Effect.Effect<IndexOffsets, KafkaUnavailable | SyncTimeout>
  /** The same as a promise (rejects with KafkaUnavailable or SyncTimeout). */
  syncNow(): Promise<IndexOffsets>
  /** Waits until the index has applied the topic up to `offsets` (rejects with SyncTimeout). */
  catchUpNow(offsets: IndexOffsets): Promise<void>
}>()("@orbit/dispatcher/EndpointIndex") {
  /** Built once the index has caught up with the topic as it was at start. */
  static readonly layer = Layer.effect(
    EndpointIndex,
    Effect.gen(function*() {
      const { kafka, brokers, topicPrefix } = yield* KafkaClient
      const probe = makeEndOffsets(kafka, brokers)
      yield* Effect.addFinalizer(() => Effect.promise(() => probe.close()))
      const topic = topicsFor(topicPrefix).endpointEvents.name
      const table = new IndexedEndpoints()
      /** Next offset to apply, per partition. */
      const applied = new Map<number, bigint>()
      const waiters = new Set<{ readonly target: IndexOffsets; readonly done: () => void }>()
      const reached = (target: IndexOffsets) => target.every((t) => (applied.get(t.partition) ?? 0n) >= BigInt(t.offset))
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
          Effect.tapError((e) => logKafkaRetry("endpoint index consumer failed; restarting", e)),
          Effect.retry(Schedule.spaced("1 second"))
        )
      )

      const catchUpNow = (target: IndexOffsets): Promise<void> => {
        if (reached(target)) return Promise.resolve()
        return new Promise<void>((resolve, reject) => {
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

      /** The measurement that new callers join: not sent yet. */
      let next: Promise<IndexOffsets> | undefined
      let lastStartedAt = Number.NEGATIVE_INFINITY
      const measure = (): Promise<IndexOffsets> => {
        if (next !== undefined) return next
        const joined = (async () => {
          await new Promise<void>((resolve) => setImmediate(resolve))
          const wait = lastStartedAt + MIN_MEASUREMENT_SPACING_MS - Date.now()
          if (wait > 0) await new Promise<void>((resolve) => setTimeout(resolve, wait))
          // From here on, callers need a measurement sent after their call: the next one.
          next = undefined
          lastStartedAt = Date.now()
          return probe.endOffsets(topic)
        })()
        next = joined
        return joined
      }

      const syncNow = async (): Promise<IndexOffsets> => {
        const target = await measure()
        await catchUpNow(target)
        return target
      }

      const sync = Effect.fn("EndpointIndex.sync")(() =>
        Effect.tryPromise({
          try: syncNow,
          catch: (e) => e instanceof SyncTimeout || e instanceof KafkaUnavailable ? e : new SyncTimeout({ message: String(e) })
        })
      )

      const started = Date.now()
      yield* sync().pipe(
        Effect.tapError((e) => logKafkaRetry("endpoint index not caught up yet; retrying", e)),
        Effect.retry(Schedule.spaced("1 second"))
      )
      yield* Effect.logInfo("endpoint index ready", { topic, endpoints: table.size, ms: Date.now() - started })

      return EndpointIndex.of({
        get: (id) => table.get(id),
        matching: (tenantId, mode, type, only) => table.matching(tenantId, mode, type, only),
        sync,
        syncNow,
        catchUpNow
      })
    })
  )
}
