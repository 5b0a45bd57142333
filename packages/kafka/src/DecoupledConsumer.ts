import type { EachBatchPayload, Kafka, KafkajsConsumer as Consumer, KafkaMessage } from "./Kafkajs.ts"
import { FETCH_MAX_WAIT_MS } from "./Consumer.ts"
import { OffsetTracker } from "./OffsetTracker.ts"
import { RECONNECT_MAX_DELAY_MS, reconnectDelays } from "./Reconnect.ts"

/** Thrown by a handler that gives a record back unfinished (shutdown): its offset is not committed. */
export class Abandoned extends Error {
  override readonly name = "Abandoned"
}

export interface DecoupledConsumerOptions {
  readonly kafka: Kafka
  readonly groupId: string
  readonly topics: ReadonlyArray<string>
  /** Starts handling a record; resolves once its outcome is durable. Rejecting leaves it uncommitted. */
  readonly handle: (topic: string, partition: number, message: KafkaMessage, signal: AbortSignal) => Promise<void>
  /**
   * Epoch ms before which `message` must not be taken, or undefined. The record's partition is
   * paused until then (and re-fetched from that record), so nothing behind it is taken either.
   */
  readonly notBefore?: ((topic: string, message: KafkaMessage) => number | undefined) | undefined
  /** Records handed out and not finished, across partitions, before fetching stops (back-pressure). */
  readonly maxOutstanding: number
  readonly partitionsConsumedConcurrently?: number
  /** How long after a record finishes its offset is committed, together with the others finished by then. */
  readonly commitIntervalMs?: number
  /** How long the broker holds a fetch open when nothing new is there (default `FETCH_MAX_WAIT_MS`). */
  readonly maxWaitTimeInMs?: number
  readonly sessionTimeoutMs?: number
  readonly onError?: (message: string, error: unknown) => void
  /**
   * When true, the `signal` a record's handler gets also aborts once a rejoin of the group leaves
   * the record's partition to another member: the handler stops starting new work for it (the new
   * owner takes the record again from the last commit), so one member at a time acts for a
   * partition. Default false: the signal aborts only at shutdown.
   */
  readonly abandonRevoked?: boolean
  /** Called on every (re)join of the group: a rebalance shows up as another call. */
  readonly onJoin?: (info: { readonly groupId: string; readonly memberId: string; readonly partitions: number }) => void
}

interface PartitionState {
  readonly topic: string
  readonly partition: number
  readonly tracker: OffsetTracker
  committed: bigint
}

/**
 * A fetch's records wait in the heap, decoded, until they are handed out, and no more than
 * `maxOutstanding` are out at once: kafkajs' default of 10 MiB per fetch is some 14,000 delivery
 * tasks, several times the dispatcher's bound. 1 MiB is still over a thousand tasks per round
 * trip; a record larger than that still comes, alone (the broker always returns at least one).
 */
const DECOUPLED_FETCH_MAX_BYTES = 1024 * 1024

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Waits `ms`; rejects with `Abandoned` as soon as `signal` aborts (shutdown). */
export const sleepUnlessAborted = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(new Abandoned())
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(t)
      reject(new Abandoned())
    }
    signal.addEventListener("abort", onAbort, { once: true })
  })

/** The first back-off of `untilDone`; later ones double up to `RECONNECT_MAX_DELAY_MS`. */
const UNTIL_DONE_FIRST_DELAY_MS = 200

/**
 * Runs `attempt` until it succeeds, backing off from `UNTIL_DONE_FIRST_DELAY_MS` to `RECONNECT_MAX_DELAY_MS` (so a record
 * waiting out a broker restart is retried soon after the broker is back); gives up only when
 * `signal` aborts (shutdown), with `Abandoned`, so the record stays uncommitted and is taken again later.
 */
export const untilDone = async <A>(
  attempt: () => Promise<A>,
  signal: AbortSignal,
  onRetry: (error: unknown) => void
): Promise<A> => {
  // Made at the first failure: most calls succeed at once, and this runs for every record.
  let delays: Generator<number, never> | undefined
  for (;;) {
    try {
      return await attempt()
    } catch (error) {
      if (signal.aborted) throw new Abandoned()
      onRetry(error)
      delays ??= reconnectDelays(UNTIL_DONE_FIRST_DELAY_MS)
      await sleepUnlessAborted(delays.next().value, signal)
    }
  }
}

/**
 * A kafkajs consumer whose callback only hands records to `handle` and returns: slow work (HTTP)
 * never runs inside the callback, so heartbeats and rebalances are never starved. Each partition's
 * offset is committed up to the contiguous prefix of records whose handling has finished.
 */
export class DecoupledConsumer {
  private readonly options: DecoupledConsumerOptions
  private readonly consumer: Consumer
  /** Per topic-partition of the current group generation; replaced on every (re)join. */
  private trackers = new Map<string, PartitionState>()
  private readonly inflight = new Set<Promise<void>>()
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly shutdown = new AbortController()
  /** With `abandonRevoked`: per assigned topic-partition, aborted when a rejoin takes it away. */
  private readonly owned = new Map<string, { readonly revoked: AbortController; readonly signal: AbortSignal }>()
  private commitTimer: NodeJS.Timeout | undefined
  private committing: Promise<void> = Promise.resolve()

  constructor(options: DecoupledConsumerOptions) {
    this.options = options
    this.consumer = options.kafka.consumer({
      groupId: options.groupId,
      sessionTimeout: options.sessionTimeoutMs ?? 30_000,
      heartbeatInterval: 3_000,
      maxWaitTimeInMs: options.maxWaitTimeInMs ?? FETCH_MAX_WAIT_MS,
      maxBytes: DECOUPLED_FETCH_MAX_BYTES,
      allowAutoTopicCreation: false,
      retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 300, maxRetryTime: RECONNECT_MAX_DELAY_MS }
    })
    // A new generation fetches from the committed offsets; old trackers must not commit for it.
    this.consumer.on(this.consumer.events.GROUP_JOIN, (event) => {
      this.trackers = new Map()
      const { groupId, memberId, memberAssignment } = event.payload
      const assigned = new Set(Object.entries(memberAssignment).flatMap(([topic, ps]) => ps.map((p) => `${topic}\u0000${p}`)))
      for (const [key, partition] of this.owned) {
        if (!assigned.has(key)) {
          partition.revoked.abort()
          this.owned.delete(key)
        }
      }
      const partitions = Object.values(memberAssignment).reduce((n, ps) => n + ps.length, 0)
      options.onJoin?.({ groupId, memberId, partitions })
    })
    this.consumer.on(this.consumer.events.CRASH, (event) => {
      // The crashed generation is gone: nothing more is committed for it, the next join starts
      // from the committed offsets.
      this.trackers = new Map()
      if (!event.payload.restart) this.restartAfterCrash(event.payload.error)
    })
  }

  get outstanding(): number {
    return this.inflight.size
  }

  private started = false

  /** Joins the group and starts fetching; a second call after success does nothing. */
  async start(): Promise<void> {
    if (this.started) return
    await this.consumer.connect()
    await this.consumer.subscribe({ topics: [...this.options.topics], fromBeginning: true })
    await this.run()
    this.started = true
  }

  private run(): Promise<void> {
    return this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.options.partitionsConsumedConcurrently ?? 6,
      eachBatch: (payload) => this.eachBatch(payload)
    })
  }

  /** A crash kafkajs does not restart by itself, waiting to be restarted here. */
  private crashed = false
  private restarting = false

  /**
   * kafkajs restarts a crashed consumer only when the error was retriable. After any other error
   * (a rebalance or membership error while the broker restarts, for example) it stays stopped for
   * good: nothing is fetched again and every commit fails with "Consumer group was not
   * initialized". So the consumer is connected and run again here, every `RECONNECT_MAX_DELAY_MS`,
   * until it runs without crashing again or the shutdown begins.
   */
  private restartAfterCrash(error: unknown): void {
    this.crashed = true
    if (this.restarting || this.shutdown.signal.aborted) return
    this.restarting = true
    this.options.onError?.("kafka consumer crashed; restarting it", error)
    void (async () => {
      while (this.crashed) {
        await sleepUnlessAborted(RECONNECT_MAX_DELAY_MS, this.shutdown.signal).catch(() => undefined)
        if (this.shutdown.signal.aborted) break
        this.crashed = false
        try {
          await this.consumer.connect()
          // A join that fails inside `run` crashes again, which sets `crashed` before `run` returns.
          await this.run()
        } catch (e) {
          this.crashed = true
          this.options.onError?.("kafka consumer restart failed; trying again", e)
        }
      }
      this.restarting = false
      // The shutdown began while restarting: leave the group the restart may have joined.
      if (this.shutdown.signal.aborted) await this.consumer.disconnect().catch(() => undefined)
    })()
  }

  /** Stops taking records, waits up to `graceMs` for in-flight ones, commits, leaves the group. */
  async stop(graceMs: number): Promise<void> {
    if (this.shutdown.signal.aborted) return
    try {
      this.consumer.pause(this.options.topics.map((topic) => ({ topic })))
    } catch {
      // Crashed and not running: there is nothing to pause.
    }
    for (const t of this.timers) clearTimeout(t)
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.allSettled([...this.inflight]),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs) })
    ])
    clearTimeout(timer)
    // Whatever has not finished is handed back: uncommitted, another member will take it.
    this.shutdown.abort()
    clearTimeout(this.commitTimer)
    this.commitTimer = undefined
    await this.commit()
    await this.consumer.disconnect().catch(() => undefined)
  }

  private async eachBatch({ batch, resolveOffset, heartbeat, pause, isRunning, isStale }: EachBatchPayload) {
    const key = `${batch.topic}\u0000${batch.partition}`
    let entry = this.trackers.get(key)
    if (entry === undefined) {
      entry = { topic: batch.topic, partition: batch.partition, tracker: new OffsetTracker(), committed: -1n }
      this.trackers.set(key, entry)
    }
    const { tracker } = entry
    const stopped = () => !isRunning() || isStale() || this.shutdown.signal.aborted
    const signal = this.signalFor(key)
    let lastBeat = Date.now()
    for (const message of batch.messages) {
      if (stopped()) return
      const due = this.options.notBefore?.(batch.topic, message)
      if (due !== undefined && due > Date.now()) {
        // Unresolved records of this batch are fetched again after the resume.
        const resume = pause()
        const t = setTimeout(() => {
          this.timers.delete(t)
          if (!this.shutdown.signal.aborted) resume()
        }, due - Date.now())
        this.timers.add(t)
        return
      }
      while (this.inflight.size >= this.options.maxOutstanding) {
        if (stopped()) return
        await sleep(10)
        if (Date.now() - lastBeat > 1_000) {
          await heartbeat()
          lastBeat = Date.now()
        }
      }
      const offset = BigInt(message.offset)
      tracker.start(offset)
      const work: Promise<void> = this.options.handle(batch.topic, batch.partition, message, signal).then(
        () => {
          tracker.finish(offset)
          this.scheduleCommit()
        },
        (error: unknown) => {
          if (!(error instanceof Abandoned)) this.options.onError?.("record handler failed; left uncommitted", error)
        }
      ).finally(() => this.inflight.delete(work))
      this.inflight.add(work)
      resolveOffset(message.offset)
    }
  }

  /** The signal of a partition's handlers: shutdown, and with `abandonRevoked` the partition's revocation. */
  private signalFor(key: string): AbortSignal {
    if (this.options.abandonRevoked !== true) return this.shutdown.signal
    let partition = this.owned.get(key)
    if (partition === undefined) {
      const revoked = new AbortController()
      partition = { revoked, signal: AbortSignal.any([this.shutdown.signal, revoked.signal]) }
      this.owned.set(key, partition)
    }
    return partition.signal
  }

  /**
   * Commits `commitIntervalMs` after the first record finished since the last commit: a timer only
   * while there is something to commit, so an idle consumer does not wake for it.
   */
  private scheduleCommit(): void {
    if (this.commitTimer !== undefined || this.shutdown.signal.aborted) return
    this.commitTimer = setTimeout(() => {
      this.commitTimer = undefined
      void this.commit()
    }, this.options.commitIntervalMs ?? 200)
  }

  /** Commits every partition whose finished prefix moved; serialised so commits never go backwards. */
  private commit(): Promise<void> {
    this.committing = this.committing.then(async () => {
      const offsets: Array<{ topic: string; partition: number; offset: string }> = []
      const moved: Array<[PartitionState, bigint]> = []
      for (const entry of this.trackers.values()) {
        const next = entry.tracker.committable()
        if (next !== undefined && next > entry.committed) {
          offsets.push({ topic: entry.topic, partition: entry.partition, offset: next.toString() })
          moved.push([entry, next])
        }
      }
      if (offsets.length === 0) return
      try {
        await this.consumer.commitOffsets(offsets)
        for (const [e, next] of moved) e.committed = next
      } catch (error) {
        // Typically a rebalance: the new owner starts from the last commit (at-least-once).
        // Otherwise (a broker blip) the next try comes without waiting for another record; after a
        // rejoin the trackers are new and there is nothing left to commit.
        this.options.onError?.("offset commit failed", error)
        this.scheduleCommit()
      }
    })
    return this.committing
  }
}
