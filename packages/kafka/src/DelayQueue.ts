import type { Topics } from "@orbit/domain"
import { Abandoned, DecoupledConsumer, type DecoupledConsumerOptions, sleepUnlessAborted } from "./DecoupledConsumer.ts"
import type { Message } from "./Kafkajs.ts"
import type { TopicMessages } from "./Producer.ts"

/** How long a fetch of the tier topics may wait at the broker when nothing new is there. */
export const DELAY_QUEUE_FETCH_MAX_WAIT_MS = 1_000

/** One topic of the delay queue: a record waits in it for `delayMs` after it was appended. */
export interface DelayTier {
  readonly topic: string
  readonly delayMs: number
}

/** The delivery delay tiers, shortest first (their topics are specified in `@orbit/domain`'s `topicsFor`). */
export const delayTiersOf = (topics: Topics): ReadonlyArray<DelayTier> => [
  { topic: topics.retry1s.name, delayMs: 1_000 },
  { topic: topics.retry5s.name, delayMs: 5_000 },
  { topic: topics.retry30s.name, delayMs: 30_000 },
  { topic: topics.retry2m.name, delayMs: 120_000 },
  { topic: topics.retry10m.name, delayMs: 600_000 },
  { topic: topics.retry1h.name, delayMs: 3_600_000 },
  { topic: topics.retry4h.name, delayMs: 14_400_000 }
]

/**
 * Where a record that is not due yet waits (pure): the tier with the largest delay not exceeding the
 * remaining wait, so it is never released early; undefined when the wait is shorter than the
 * shortest tier (the caller then waits in process).
 */
export const tierFor = (tiers: ReadonlyArray<DelayTier>, remainingMs: number): DelayTier | undefined => {
  let chosen: DelayTier | undefined
  for (const tier of tiers) if (tier.delayMs <= remainingMs) chosen = tier
  return chosen
}

/**
 * When the head record of a tier partition may be taken: its append time plus the tier's delay.
 * Append times grow along a partition, so nothing behind the head is due earlier.
 */
export const ripeAt = (tier: DelayTier, appendedAtMs: number): number => appendedAtMs + tier.delayMs

/**
 * A durable delay queue over Kafka: `record`/`send` park a message until `notBefore`, and
 * `consumer` hands each parked message to its handler once it is ripe, never earlier. The tiers
 * are an implementation detail: a message waits in the tier with the largest delay not exceeding
 * its remaining wait, the consumer pauses a tier partition until its head record's delay has
 * passed, and `whenRipe` (called by the handler with the message's own `notBefore`) sends a
 * message that is still early on to a shorter tier, or waits in process for the last second.
 * Parked messages are kept byte for byte (key, value, headers); only the topic changes.
 */
export class DelayQueue {
  readonly tiers: ReadonlyArray<DelayTier>
  private readonly tierByTopic: ReadonlyMap<string, DelayTier>
  private readonly produce: (batch: ReadonlyArray<TopicMessages>) => Promise<void>

  constructor(tiers: ReadonlyArray<DelayTier>, produce: (batch: ReadonlyArray<TopicMessages>) => Promise<void>) {
    this.tiers = tiers
    this.tierByTopic = new Map(tiers.map((t) => [t.topic, t]))
    this.produce = produce
  }

  /** The tier topics, for consuming and for tests. */
  get topics(): ReadonlyArray<string> {
    return this.tiers.map((t) => t.topic)
  }

  /**
   * The record that parks `message` until `notBefore`, to be produced on its own or with others
   * in one batch. A wait shorter than the shortest tier goes to the shortest tier.
   */
  record(message: Message, notBefore: number, now: number = Date.now()): TopicMessages {
    return { topic: (tierFor(this.tiers, notBefore - now) ?? this.tiers[0]!).topic, messages: [message] }
  }

  /** Parks `message` until `notBefore`; resolves once it is durable (rejects with KafkaUnavailable). */
  send(message: Message, notBefore: number): Promise<void> {
    return this.produce([this.record(message, notBefore)])
  }

  /**
   * For a handler that took a record (from a tier or any other topic): "ripe" when `notBefore`
   * has come, after waiting in process if less than the shortest tier remains; "parked" when it was
   * early enough to go back into a tier as `message()` (built only then), through `park` (which
   * retries until it is durable). Rejects with `Abandoned` if `signal` aborts while waiting.
   */
  async whenRipe(
    message: () => Message,
    notBefore: number,
    signal: AbortSignal,
    park: (send: () => Promise<void>) => Promise<void>
  ): Promise<"ripe" | "parked"> {
    const remaining = notBefore - Date.now()
    if (remaining <= 0) return "ripe"
    if (tierFor(this.tiers, remaining) !== undefined) {
      await park(() => this.send(message(), notBefore))
      return "parked"
    }
    await sleepUnlessAborted(remaining, signal)
    if (signal.aborted) throw new Abandoned()
    return "ripe"
  }

  /**
   * A consumer of the tier topics that takes no record before its tier's delay has passed. A tier
   * partition paused until its head is ripe is fetched again from the next fetch on, which waits
   * for the fetch in flight: its wait (`DELAY_QUEUE_FETCH_MAX_WAIT_MS`) bounds how late a ripe
   * record is taken, so it is shorter than other consumers'.
   */
  consumer(options: Omit<DecoupledConsumerOptions, "topics" | "notBefore">): DecoupledConsumer {
    return new DecoupledConsumer({
      maxWaitTimeInMs: DELAY_QUEUE_FETCH_MAX_WAIT_MS,
      ...options,
      topics: this.topics,
      notBefore: (topic, message) => {
        const tier = this.tierByTopic.get(topic)
        return tier === undefined ? undefined : ripeAt(tier, Number(message.timestamp))
      }
    })
  }
}
