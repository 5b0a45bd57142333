import { Context, Duration, Effect, Layer } from "effect"
import { CompressionTypes, type ICustomPartitioner, type Kafka, type KafkajsProducer, type Message, type RecordMetadata } from "./Kafkajs.ts"
import { KafkaClient, KafkaUnavailable, unavailable } from "./KafkaClient.ts"
import { KeyPartitioner } from "./KeyPartitioner.ts"
import { TRACEPARENT_HEADER, traceHeaders } from "./TraceHeaders.ts"
import { RECONNECT_MAX_DELAY_MS } from "./Reconnect.ts"

export interface TopicMessages {
  readonly topic: string
  readonly messages: ReadonlyArray<Message>
}

/**
 * At most this many bytes of keys and values go into one produce request, so that no partition's
 * record batch can reach the broker's `message.max.bytes` (1 MiB by default), however many callers
 * are merged and however large one caller's batch is (a large batch is split over requests).
 */
const MAX_BYTES_PER_REQUEST = 512 * 1024

/** Where one record landed: its topic, partition and offset. */
export interface RecordOffset {
  readonly topicName: string
  readonly partition: number
  readonly offset: bigint
}

interface Caller {
  /** Records not yet acknowledged. */
  remaining: number
  failed: boolean
  /** Each record's offset, by its position in the caller's batch. */
  readonly offsets: Array<RecordOffset>
  readonly resolve: (offsets: ReadonlyArray<RecordOffset>) => void
  readonly reject: (error: KafkaUnavailable) => void
}

interface Pending {
  readonly topic: string
  readonly message: Message
  readonly bytes: number
  readonly caller: Caller
  /** The record's position in its caller's batch. */
  readonly index: number
}

const sizeOf = (v: Message["value"] | Message["key"]): number =>
  v === null || v === undefined ? 0 : typeof v === "string" ? Buffer.byteLength(v) : v.length

/**
 * The platform's only kafkajs producer settings: idempotent (one request in flight, so a retried
 * request can't write a record twice), no topic auto-creation, the key partitioner.
 */
const newKafkajsProducer = (kafka: Kafka, createPartitioner: ICustomPartitioner = KeyPartitioner): KafkajsProducer =>
  kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner,
    retry: { retries: 5, initialRetryTime: 200, maxRetryTime: RECONNECT_MAX_DELAY_MS }
  })

/**
 * Group commit over one idempotent kafkajs producer; see `Producer`. `lingerMs` > 0 lets a
 * request that would start on an idle lane wait that long for more records (fewer, larger
 * requests where latency does not matter).
 */
const makeLane = (kafka: Kafka, lingerMs: number) => {
  // The partition kafkajs picked for each record (the partitioner sees the very message objects
  // we hand it): with the broker's base offset per partition it gives every record its offset,
  // so merged callers each learn where their own records landed.
  const partitionOf = new WeakMap<Message, number>()
  const recordingPartitioner: ICustomPartitioner = () => {
    const inner = KeyPartitioner()
    return (args) => {
      const partition = inner(args)
      partitionOf.set(args.message, partition)
      return partition
    }
  }
  let current: Promise<KafkajsProducer> | undefined
  const producer = (): Promise<KafkajsProducer> => {
    current ??= (async () => {
      const p = newKafkajsProducer(kafka, recordingPartitioner)
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

  /** How many records from the head of the queue go into the next request. */
  const nextRequestSize = () => {
    let bytes = 0
    let n = 0
    while (n < queue.length && (n === 0 || bytes + queue[n]!.bytes <= MAX_BYTES_PER_REQUEST)) {
      bytes += queue[n]!.bytes
      n++
    }
    return n
  }

  const flush = async () => {
    flushing = true
    if (lingerMs > 0) await new Promise((resolve) => setTimeout(resolve, lingerMs))
    while (queue.length > 0) {
      const n = nextRequestSize()
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
        if (closed) throw new Error("producer closed")
        const p = await producer()
        const metadata = await p.sendBatch({ acks: -1, compression: CompressionTypes.None, topicMessages })
        assignOffsets(taken, metadata)
        for (const item of taken) {
          const c = item.caller
          if (--c.remaining === 0 && !c.failed) c.resolve(c.offsets)
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
        // The failed callers will send again; their records still queued are not sent now.
        if (dropped) queue = queue.filter((item) => !item.caller.failed)
      }
    }
    flushing = false
  }

  /**
   * The broker answers one base offset per partition of a request; kafkajs groups a request's
   * records per partition in their order, so a record's offset is its partition's base offset plus
   * the number of records before it in that partition's group.
   */
  const assignOffsets = (taken: ReadonlyArray<Pending>, metadata: ReadonlyArray<RecordMetadata>) => {
    const next = new Map<string, bigint>()
    for (const m of metadata) {
      if (m.baseOffset !== undefined) next.set(`${m.topicName}|${m.partition}`, BigInt(m.baseOffset))
    }
    for (const item of taken) {
      const partition = partitionOf.get(item.message)
      if (partition === undefined) continue
      const key = `${item.topic}|${partition}`
      const offset = next.get(key)
      if (offset === undefined) continue
      next.set(key, offset + 1n)
      item.caller.offsets[item.index] = { topicName: item.topic, partition, offset }
    }
  }

  const send = (batch: ReadonlyArray<TopicMessages>): Promise<ReadonlyArray<RecordOffset>> => {
    let records = 0
    for (const b of batch) records += b.messages.length
    if (records === 0) return Promise.resolve([])
    return new Promise<ReadonlyArray<RecordOffset>>((resolve, reject) => {
      const caller: Caller = { remaining: records, failed: false, offsets: [], resolve, reject }
      let index = 0
      for (const b of batch) {
        for (const message of b.messages) {
          queue.push({ topic: b.topic, message, bytes: sizeOf(message.value) + sizeOf(message.key) + 64, caller, index: index++ })
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

/**
 * Which request pipeline a batch goes through; each lane has its own kafkajs producer (its own
 * connection), created on first use. `prompt` starts a request at once; `lingering` waits `LINGER_MS` for
 * more records first (fewer, larger requests where latency does not matter).
 */
export type Lane = "prompt" | "lingering"

const LINGER_MS: Record<Lane, number> = { prompt: 0, lingering: 5 }

/**
 * `messages` with the current span as their trace context (a `traceparent` header), unless they
 * carry one already or tracing is off (no span, or the no-op span of disabled tracing).
 */
const withTraceContext = (messages: ReadonlyArray<Message>): Effect.Effect<ReadonlyArray<Message>> =>
  Effect.map(Effect.option(Effect.currentSpan), (span) => {
    if (span._tag === "None" || span.value.traceId === "noop") return messages
    const headers = traceHeaders(span.value)
    return messages.map((m) => m.headers?.[TRACEPARENT_HEADER] !== undefined ? m : { ...m, headers: { ...m.headers, ...headers } })
  })

/**
 * The platform's one producer: idempotent, acks = all (once a send succeeds its records are
 * durable on every in-sync replica and a retried request can't write them twice), the key
 * partitioner, no compression.
 *
 * Group commit: callers that send while a produce request is in flight are merged into the next
 * request. Idempotence allows one request in flight per producer (ordering), so without merging,
 * throughput would be one broker round trip per record. Every caller learns its own records'
 * offsets (`send`), however many others shared its request (the API waits for the projection to
 * reach them). A request that fails fails every caller it carried.
 *
 * Requests are strictly sequential: the next one starts only when kafkajs has settled the
 * previous one. After any failed request the lane's kafkajs producer is replaced by a fresh one
 * (new producer id): kafkajs rolls back its sequence numbers when a request fails, even for
 * partitions the broker did write, and the failed records come back merged differently; the same
 * producer id would then get `OUT_OF_ORDER_SEQUENCE_NUMBER` on that partition forever. A fresh id
 * makes the re-send a plain duplicate at worst (at-least-once; every consumer tolerates it).
 *
 * The Effect faces put the current span on each record as its `traceparent` header (when tracing
 * is on and the record has none), and give up after `sendTimeout` with KafkaUnavailable so an API can answer 503
 * instead of hanging; `sendNow` has no timeout, for callers that retry until durable.
 */
export class Producer extends Context.Service<Producer, {
  /** Merged with other callers' records; resolves with each record's offset, in the order given. */
  send(topic: string, messages: ReadonlyArray<Message>): Effect.Effect<ReadonlyArray<RecordOffset>, KafkaUnavailable>
  /** Merged with other callers' records; resolves once every record is acknowledged. */
  sendBatch(batch: ReadonlyArray<TopicMessages>, lane?: Lane): Effect.Effect<void, KafkaUnavailable>
  /** `sendBatch` as a promise without timeout (rejects with KafkaUnavailable), for per-record code. */
  sendNow(batch: ReadonlyArray<TopicMessages>, lane?: Lane): Promise<void>
}>()("@orbit/kafka/Producer") {
  static readonly layer = (options: { readonly sendTimeout?: Duration.Input } = {}) =>
    Layer.effect(
      Producer,
      Effect.gen(function*() {
        const { kafka } = yield* KafkaClient
        const lanes = { prompt: makeLane(kafka, LINGER_MS.prompt), lingering: makeLane(kafka, LINGER_MS.lingering) }
        yield* Effect.addFinalizer(() => Effect.promise(() => Promise.all([lanes.prompt.close(), lanes.lingering.close()])))
        const timeout = options.sendTimeout ?? "5 seconds"
        const bounded = <A>(f: () => Promise<A>) =>
          Effect.tryPromise({
            try: f,
            catch: (e) => e instanceof KafkaUnavailable ? e : new KafkaUnavailable({ operation: "produce", message: String(e) })
          }).pipe(
            Effect.timeoutOrElse({
              duration: timeout,
              orElse: () => Effect.fail(new KafkaUnavailable({ operation: "produce", message: "timed out" }))
            })
          )
        const sendNow = (batch: ReadonlyArray<TopicMessages>, lane: Lane = "prompt") => lanes[lane].send(batch).then(() => undefined)
        return Producer.of({
          // The Effect faces put the caller's trace context on the records (the span of this call).
          send: Effect.fn("Producer.send", { kind: "producer" })((topic: string, messages: ReadonlyArray<Message>) =>
            Effect.flatMap(withTraceContext(messages), (traced) => bounded(() => lanes.prompt.send([{ topic, messages: traced }])))
          ),
          sendBatch: Effect.fn("Producer.sendBatch", { kind: "producer" })((batch: ReadonlyArray<TopicMessages>, lane?: Lane) =>
            Effect.flatMap(
              Effect.forEach(batch, (b) => Effect.map(withTraceContext(b.messages), (messages) => ({ topic: b.topic, messages }))),
              (traced) => bounded(() => sendNow(traced, lane))
            )
          ),
          sendNow
        })
      })
    )
}
