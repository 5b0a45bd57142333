import { KafkaClient, KafkaUnavailable, KeyPartitioner, type TopicMessages, unavailable } from "@orbit/kafka"
import { Context, Effect, Layer } from "effect"
import { CompressionTypes, type Kafka, type Message, type Producer as KafkaProducer } from "kafkajs"

/**
 * At most this many bytes of keys and values go into one produce request, so that no partition's
 * record batch can reach the broker's `message.max.bytes` (1 MiB by default), however many callers
 * are merged and however large one caller's batch is (a fan-out batch is split over requests).
 */
const MAX_BYTES_PER_REQUEST = 512 * 1024

interface Caller {
  /** Records not yet acknowledged. */
  remaining: number
  failed: boolean
  readonly resolve: () => void
  readonly reject: (error: KafkaUnavailable) => void
}

interface Pending {
  readonly topic: string
  readonly message: Message
  readonly bytes: number
  readonly caller: Caller
}

const sizeOf = (v: Message["value"] | Message["key"]): number =>
  v === null || v === undefined ? 0 : typeof v === "string" ? Buffer.byteLength(v) : v.length

/**
 * Group commit over one idempotent kafkajs producer; see `Publisher`. `lingerMs` > 0 lets a
 * request that would start on an idle lane wait that long for more records (fewer, larger
 * requests where latency does not matter).
 */
const makeLane = (kafka: Kafka, lingerMs: number) => {
  let current: Promise<KafkaProducer> | undefined
  const producer = (): Promise<KafkaProducer> => {
    current ??= (async () => {
      const p = kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        createPartitioner: KeyPartitioner,
        retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 3_000 }
      })
      try {
        await p.connect()
      } catch (error) {
        await p.disconnect().catch(() => undefined)
        throw error
      }
      return p
    })()
    const attempt = current
    attempt.catch(() => {
      if (current === attempt) current = undefined
    })
    return attempt
  }
  const replace = () => {
    const old = current
    current = undefined
    void old?.then((p) => p.disconnect()).catch(() => undefined)
  }

  // Records in arrival order; a caller's records are contiguous.
  let queue: Array<Pending> = []
  let flushing = false
  let closed = false

  const flush = async () => {
    flushing = true
    if (lingerMs > 0) await new Promise((resolve) => setTimeout(resolve, lingerMs))
    while (queue.length > 0) {
      let bytes = 0
      let n = 0
      while (n < queue.length && (n === 0 || bytes + queue[n]!.bytes <= MAX_BYTES_PER_REQUEST)) {
        bytes += queue[n]!.bytes
        n++
      }
      const taken = queue.slice(0, n)
      queue = n === queue.length ? [] : queue.slice(n)
      const byTopic = new Map<string, Array<Message>>()
      for (const item of taken) {
        let list = byTopic.get(item.topic)
        if (list === undefined) byTopic.set(item.topic, list = [])
        list.push(item.message)
      }
      const topicMessages = Array.from(byTopic, ([topic, messages]) => ({ topic, messages }))
      try {
        if (closed) throw new Error("publisher closed")
        const p = await producer()
        await p.sendBatch({ acks: -1, compression: CompressionTypes.None, topicMessages })
        for (const item of taken) {
          const c = item.caller
          if (--c.remaining === 0 && !c.failed) c.resolve()
        }
      } catch (error) {
        replace()
        const failure = unavailable("produce")(error)
        let dropped = false
        for (const item of taken) {
          if (!item.caller.failed) {
            item.caller.failed = true
            item.caller.reject(failure)
            dropped = true
          }
        }
        // The failed callers will publish again; their records still queued are not sent now.
        if (dropped) queue = queue.filter((item) => !item.caller.failed)
      }
    }
    flushing = false
  }

  const send = (batch: ReadonlyArray<TopicMessages>): Promise<void> => {
    let records = 0
    for (const b of batch) records += b.messages.length
    if (records === 0) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      const caller: Caller = { remaining: records, failed: false, resolve, reject }
      for (const b of batch) {
        for (const message of b.messages) {
          queue.push({ topic: b.topic, message, bytes: sizeOf(message.value) + sizeOf(message.key) + 64, caller })
        }
      }
      if (!flushing) void flush()
    })
  }

  const close = async () => {
    closed = true
    const p = current
    current = undefined
    await p?.then((x) => x.disconnect()).catch(() => undefined)
  }

  return { send, close }
}

/** Which producer a batch goes through; each lane has its own connection and request pipeline. */
export type Lane = "tasks" | "outcomes"

/**
 * Group commit over idempotent producers (acks = all): callers that publish while a produce
 * request is in flight are merged into the next request. Idempotence allows one request in flight
 * per producer (ordering), so without merging, throughput would be one broker round trip per record.
 *
 * Two lanes, each its own producer: `tasks` (fan-out: delivery tasks, invalid copies) and
 * `outcomes` (attempt events, retries, dead letters; 5 ms linger). A delivery waits for its
 * task's produce, so that must not queue behind the attempt records of the deliveries before it.
 *
 * Why its own kafkajs producers rather than `@orbit/kafka`'s `Producer`:
 * - Requests are strictly sequential: the next one starts only when kafkajs has settled the
 *   previous one (no client-side timeout that abandons a request still retrying in the background).
 * - After any failed request the producer is replaced by a fresh one (new producer id). kafkajs
 *   rolls back its sequence numbers when a request fails, even for partitions the broker did
 *   write, and the failed records come back merged differently; the same producer id would then
 *   get `OUT_OF_ORDER_SEQUENCE_NUMBER` on that partition forever. A fresh id makes the re-send a
 *   plain duplicate at worst (at-least-once; every consumer of these topics tolerates it).
 */
export class Publisher extends Context.Service<Publisher, {
  /** Resolves once every record is acknowledged by all in-sync replicas. */
  publish(batch: ReadonlyArray<TopicMessages>, lane?: Lane): Effect.Effect<void, KafkaUnavailable>
  /** The same as a promise (rejects with KafkaUnavailable), for per-record code. */
  send(batch: ReadonlyArray<TopicMessages>, lane?: Lane): Promise<void>
}>()("@orbit/dispatcher/Publisher") {
  static readonly layer = Layer.effect(
    Publisher,
    Effect.gen(function*() {
      const { kafka } = yield* KafkaClient
      // Tasks gate every delivery: no linger. Outcomes only gate offset commits: 5 ms of linger
      // turns a few hundred small produce requests per second into a few dozen.
      const lanes = { tasks: makeLane(kafka, 0), outcomes: makeLane(kafka, 5) }
      yield* Effect.addFinalizer(() => Effect.promise(() => Promise.all([lanes.tasks.close(), lanes.outcomes.close()])))
      const send = (batch: ReadonlyArray<TopicMessages>, lane: Lane = "outcomes") => lanes[lane].send(batch)
      const publish = (batch: ReadonlyArray<TopicMessages>, lane: Lane = "outcomes") =>
        Effect.tryPromise({
          try: () => send(batch, lane),
          catch: (e) => e instanceof KafkaUnavailable ? e : new KafkaUnavailable({ operation: "produce", message: String(e) })
        })
      return Publisher.of({ publish, send })
    })
  )
}
