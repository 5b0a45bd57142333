import { randomUUID } from "node:crypto"
import {
  decodeDeliveryAttempted,
  decodeDeliveryDeadLettered,
  type DeliveryDeadLettered,
  type DeliveryTask,
  ENDPOINT_ID_PATTERN,
  encodeDeliveryTask,
  ISO_DATE_PATTERN,
  ISO_INSTANT_PATTERN,
  redeliveryTask,
  topicsFor
} from "@orbit/domain"
import { consumeBatches, KafkaClient, type KafkaMessage, type KafkaUnavailable, Producer, TopicAdmin } from "@orbit/kafka"
import { Deferred, Effect, Fiber, Schedule, Schema, Stream } from "effect"

/**
 * `deliveries replay`: re-sends dead-lettered deliveries of one endpoint. Dead letters carry the
 * exact body and the delivery id, so each becomes a fresh attempt-1 `DeliveryTask` with the SAME
 * `delivery_id` (receivers dedupe on it, and on the event id in the body) and the normal worker
 * path takes it from there: matching (a deleted or inactive endpoint gets nothing), signing with the
 * current secret, retries per the endpoint's current policy, and a new dead letter if it fails again.
 */

/** A real calendar date (JavaScript would read 2026-02-30 as 2 March). */
const isCalendarDate = (s: string) => {
  const [y, m, d] = s.slice(0, 10).split("-").map(Number) as [number, number, number]
  const date = new Date(Date.UTC(y, m - 1, d))
  return date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d
}

/** `--since`: an ISO 8601 instant with a time zone (`2026-11-27T10:00:00Z`), or a UTC date (`2026-11-27`). */
export const SinceArg = Schema.String.check(
  Schema.makeFilter((s) => (ISO_INSTANT_PATTERN.test(s) || ISO_DATE_PATTERN.test(s)) && isCalendarDate(s) && !Number.isNaN(Date.parse(s)), {
    expected: "an ISO 8601 time with a time zone, e.g. 2026-11-27T10:00:00Z, or a date, e.g. 2026-11-27"
  })
)

export const ReplayArgs = Schema.Struct({
  endpoint: Schema.String.check(Schema.isPattern(ENDPOINT_ID_PATTERN)).annotate({
    expected: "an endpoint id, e.g. wh_3kQ9…"
  }),
  since: Schema.optionalKey(SinceArg)
})
export type ReplayArgs = typeof ReplayArgs.Type

/**
 * The dead letters to replay (pure): those of the endpoint, dead-lettered at or after `since`,
 * one per delivery id (the latest, should a delivery have been dead-lettered more than once), and
 * not delivered since: a delivery with a successful attempt after its dead letter (a replay, a
 * recovery or a single retry through the API) is skipped. `succeededAt` holds, per delivery id,
 * the time of its latest successful attempt.
 */
export const selectForReplay = (
  deadLetters: Iterable<DeliveryDeadLettered>,
  options: { readonly endpointId: string; readonly since: number | undefined; readonly succeededAt?: ReadonlyMap<string, number> }
): Array<DeliveryDeadLettered> => {
  const byDelivery = new Map<string, DeliveryDeadLettered>()
  for (const d of deadLetters) {
    if (d.endpoint_id !== options.endpointId) continue
    const at = Date.parse(d.occurred_at)
    if (options.since !== undefined && !(at >= options.since)) continue
    const seen = byDelivery.get(d.delivery_id)
    if (seen === undefined || Date.parse(seen.occurred_at) <= at) byDelivery.set(d.delivery_id, d)
  }
  return [...byDelivery.values()]
    .filter((d) => !((options.succeededAt?.get(d.delivery_id) ?? -Infinity) > Date.parse(d.occurred_at)))
    .sort((a, b) => Date.parse(a.occurred_at) - Date.parse(b.occurred_at))
}

/** A fresh first attempt of a dead-lettered delivery (pure): same delivery id, same body, due now. */
export const replayTask = (dead: DeliveryDeadLettered, now: number, newId: () => string): DeliveryTask =>
  redeliveryTask(dead, now, newId)

export class ReplayError extends Schema.TaggedError<ReplayError>()("ReplayError", {
  message: Schema.String
}) {}

/** Reading stops with an error when no record arrives for this long while records are still expected. */
const STALL_MS = 60_000
const PRODUCE_CHUNK = 500

export interface ReplayReport {
  readonly scanned: number
  readonly unreadable: number
  readonly replayed: number
  /** Dead letters of the endpoint skipped because the delivery succeeded after it was dead-lettered. */
  readonly deliveredSince: number
}

/**
 * Reads `webhooks.deliveries.dead` from the beginning up to the end offsets measured at start (a
 * fresh consumer group, deleted afterwards), then produces the selected dead letters onto
 * `webhooks.deliveries` (idempotent producer, acks all) and returns what it did.
 */
export const replayDeadLetters = Effect.fn("DeadLetterReplay.run")(function*(args: ReplayArgs) {
  const { topicPrefix } = yield* KafkaClient
  const producer = yield* Producer
  const admin = yield* TopicAdmin
  const topics = topicsFor(topicPrefix)
  const deadTopic = topics.dead.name

  // A broker that blips (restarts) for a few seconds is waited for; one that stays away is an error.
  const adminCall = <A>(what: string, call: Effect.Effect<A, KafkaUnavailable>) =>
    call.pipe(
      Effect.mapError((e) => new ReplayError({ message: `${what}: ${e.message}` })),
      Effect.retry({ schedule: Schedule.spaced("1 second"), times: 15 })
    )
  const existing = yield* adminCall("cannot list topics", admin.listTopics)
  if (!existing.includes(deadTopic)) {
    return yield* new ReplayError({
      message: `the dead-letter topic ${deadTopic} does not exist (is ORBIT_TOPIC_PREFIX right? has the dispatcher run?)`
    })
  }

  /**
   * Reads a topic from the beginning up to its end offsets as of now (a fresh consumer group,
   * deleted afterwards; nothing committed), handing each record to `onRecord`.
   */
  const readToEnd = (topic: string, onRecord: (message: KafkaMessage, partition: number) => Effect.Effect<void>) =>
    Effect.gen(function*() {
      // The last offset to read per partition, as of now; records written later are not read.
      const offsets = yield* adminCall("cannot read end offsets", admin.offsetRange(topic))
      const lastToRead = new Map<number, bigint>()
      for (const o of offsets) if (BigInt(o.high) > BigInt(o.low)) lastToRead.set(o.partition, BigInt(o.high) - 1n)
      if (lastToRead.size === 0) return
      const reached = new Map<number, bigint>()
      const caughtUp = yield* Deferred.make<void>()
      let lastProgress = Date.now()
      const groupId = `${topicPrefix}orbit-replay-${Date.now()}-${randomUUID()}`
      // A one-shot read that stops once caught up: a short fetch wait, since the stop waits for
      // the fetch in flight.
      const reading = yield* consumeBatches({ groupId, topics: [topic], fromBeginning: true, maxWaitTimeInMs: 500 }).pipe(
        Stream.runForEach((consumed) =>
          Effect.gen(function*() {
            const { batch } = consumed
            const last = lastToRead.get(batch.partition)
            for (const message of batch.messages) {
              if (last === undefined || BigInt(message.offset) > last) continue
              yield* onRecord(message, batch.partition)
            }
            lastProgress = Date.now()
            const batchLast = BigInt(batch.lastOffset())
            if (batchLast > (reached.get(batch.partition) ?? -1n)) reached.set(batch.partition, batchLast)
            if ([...lastToRead].every(([p, l]) => (reached.get(p) ?? -1n) >= l)) yield* Deferred.succeed(caughtUp, undefined)
            yield* Deferred.succeed(consumed.done, undefined)
          })
        ),
        Effect.forkScoped
      )
      const stalled = Effect.gen(function*() {
        while (Date.now() - lastProgress < STALL_MS) yield* Effect.sleep("500 millis")
        return yield* new ReplayError({ message: `no progress reading ${topic} for ${STALL_MS / 1000} s` })
      })
      yield* Effect.raceFirst(Deferred.await(caughtUp), stalled)
      yield* Fiber.interrupt(reading)
      // The group only existed for this read; leaving it behind would clutter the broker.
      yield* admin.deleteGroup(groupId).pipe(Effect.ignore)
    })

  const found: Array<DeliveryDeadLettered> = []
  let scanned = 0
  let unreadable = 0
  yield* readToEnd(deadTopic, (message, partition) => {
    scanned++
    try {
      found.push(decodeDeliveryDeadLettered(message.value?.toString("utf8") ?? ""))
      return Effect.void
    } catch (error) {
      unreadable++
      return Effect.logWarning("skipped an unreadable dead letter", { partition, offset: message.offset, error: String(error).slice(0, 300) })
    }
  })

  // Deliveries of the endpoint that succeeded since they were dead-lettered are not sent again:
  // the attempt log (keyed by endpoint id, kept as long as the dead letters) says which.
  const succeededAt = new Map<string, number>()
  if (found.some((d) => d.endpoint_id === args.endpoint) && existing.includes(topics.attempts.name)) {
    yield* readToEnd(topics.attempts.name, (message) => {
      if (message.key?.toString("utf8") !== args.endpoint) return Effect.void
      try {
        const a = decodeDeliveryAttempted(message.value?.toString("utf8") ?? "")
        const at = Date.parse(a.occurred_at)
        if (a.outcome === "succeeded" && a.endpoint_id === args.endpoint && at > (succeededAt.get(a.delivery_id) ?? -Infinity)) {
          succeededAt.set(a.delivery_id, at)
        }
      } catch {
        // An unreadable attempt says nothing about a success; the dead letter is replayed.
      }
      return Effect.void
    })
  }

  const since = args.since === undefined ? undefined : Date.parse(args.since)
  const candidates = selectForReplay(found, { endpointId: args.endpoint, since })
  const selected = selectForReplay(found, { endpointId: args.endpoint, since, succeededAt })
  const now = Date.now()
  const messages = selected.map((d) => ({ key: d.endpoint_id, value: encodeDeliveryTask(replayTask(d, now, randomUUID)) }))
  for (let i = 0; i < messages.length; i += PRODUCE_CHUNK) {
    yield* producer.send(topics.deliveries.name, messages.slice(i, i + PRODUCE_CHUNK)).pipe(
      // The producer is idempotent: a retried send can't write a record twice (the broker may blip).
      Effect.retry({ schedule: Schedule.exponential("500 millis"), times: 6 }),
      Effect.mapError((e) => new ReplayError({ message: `cannot produce to ${topics.deliveries.name}: ${e.message}` }))
    )
  }
  const report: ReplayReport = { scanned, unreadable, replayed: selected.length, deliveredSince: candidates.length - selected.length }
  return report
})
