import { randomUUID } from "node:crypto"
import {
  decodeDeliveryTask,
  type DeliveryTask,
  encodeDeliveryDeadLettered,
  encodeDeliveryTask,
  type Endpoint,
  subscribes,
  topicsFor
} from "@orbit/domain"
import {
  Abandoned,
  DecoupledConsumer,
  DelayQueue,
  delayTiersOf,
  KafkaClient,
  type KafkaMessage,
  logKafkaRetry,
  type Message,
  Producer,
  type RecordTraceContext,
  type TopicMessages,
  traceContextOf,
  traceHeaders,
  untilDone
} from "@orbit/kafka"
import { promiseSpans } from "@orbit/runtime"
import { Context, Effect, Layer, Schedule, Tracer } from "effect"
import { Deliverer } from "./Deliverer.ts"
import { DispatcherConfig } from "../DispatcherConfig.ts"
import { DispatcherMetrics } from "../DispatcherMetrics.ts"
import { decodeIndexOffsets, EndpointIndex, encodeIndexOffsets, INDEX_OFFSETS_HEADER, type IndexOffsets } from "../endpoints/EndpointIndex.ts"
import { attemptedJson } from "../RecordJson.ts"
import { Deferred, KeyedLimiter, SHED } from "./KeyedLimiter.ts"
import { type AttemptResult, planAfterAttempt } from "../retry/RetrySchedule.ts"

type Spans = NonNullable<Effect.Success<typeof promiseSpans>>
type Span = ReturnType<Spans["start"]>

/** The span of one HTTP attempt (OpenTelemetry HTTP client conventions, plus the delivery's ids). */
const startAttemptSpan = (spans: Spans, task: DeliveryTask, trace: RecordTraceContext | undefined): Span =>
  spans.start("delivery.attempt", {
    parent: trace,
    kind: "client",
    attributes: {
      "http.request.method": "POST",
      "orbit.delivery_id": task.delivery_id,
      "orbit.endpoint_id": task.endpoint_id,
      "orbit.tenant_id": task.tenant_id,
      "orbit.event_id": task.source_event_id,
      "orbit.event_type": task.source_event_type,
      "orbit.attempt": task.attempt
    }
  })

const endAttemptSpan = (spans: Spans, span: Span, result: AttemptResult): void => {
  if (span.sampled) {
    if (result.httpStatus !== null) span.attribute("http.response.status_code", result.httpStatus)
    span.attribute("orbit.outcome", result.ok ? "succeeded" : "failed")
    if (result.errorClass !== null) span.attribute("error.type", result.errorClass)
  }
  spans.end(span, result.ok ? undefined : result.errorMessage ?? result.errorClass ?? "failed")
}

/**
 * Takes delivery tasks from `webhooks.deliveries` and the delay queue, makes the attempts in an
 * in-process pool (bounded overall and per endpoint), and records each outcome durably (attempt
 * event, plus the next attempt in the delay queue or a dead letter) before the task's offset is
 * committed. A crash re-runs unfinished tasks (at-least-once); it can neither lose a scheduled
 * retry (it is in Kafka before the task is committed) nor fire one early (`not_before` is checked
 * whenever a task is taken).
 */
export class DeliveryWorker extends Context.Service<DeliveryWorker, {
  /** Attempts running or waiting for a slot (for tests and metrics). */
  readonly outstanding: () => number
  /**
   * A first attempt straight from the fan-out, without the hop through `webhooks.deliveries`:
   * when the endpoint (active, subscribed, not rate-limited) may start an attempt at once, runs it
   * and records its outcome durably (attempt event, plus retry or dead letter), resolving once
   * that is acknowledged; otherwise returns `undefined` and the task must be queued in the topic.
   * `indexOffsets` are the ones the task was matched at (this process's index has applied them);
   * `trace` is the fan-out span's context, the parent of the attempt's span.
   */
  readonly deliverNow: (
    task: DeliveryTask,
    indexOffsets: IndexOffsets,
    signal: AbortSignal,
    trace: RecordTraceContext | undefined
  ) => Promise<void> | undefined
}>()("@orbit/dispatcher/DeliveryWorker") {
  static readonly layer = Layer.effect(
    DeliveryWorker,
    Effect.gen(function*() {
      const { kafka, topicPrefix } = yield* KafkaClient
      const config = yield* DispatcherConfig
      const index = yield* EndpointIndex
      const deliverer = yield* Deliverer
      const producer = yield* Producer
      const metrics = yield* DispatcherMetrics
      const run = Effect.runPromiseWith(yield* Effect.context<never>())
      const spans = yield* promiseSpans
      const topics = topicsFor(topicPrefix)
      // Outcomes only gate offset commits: the lingering lane turns many small requests into few.
      const delays = new DelayQueue(delayTiersOf(topics), (batch) => producer.sendNow(batch, "lingering"))
      const limiter = new KeyedLimiter({ global: config.concurrency, perKey: config.perEndpointConcurrency })
      let inFlight = 0
      /** A log line; about a task with a trace context, inside it (the line carries its trace_id). */
      const log = (level: "Info" | "Warning" | "Debug", message: string, extra: Record<string, unknown>, trace?: RecordTraceContext) => {
        const line = (level === "Info" ? Effect.logInfo : level === "Warning" ? Effect.logWarning : Effect.logDebug)(message, extra)
        void run(trace === undefined ? line : Effect.withParentSpan(line, Tracer.externalSpan(trace)))
      }

      /**
       * Retries until acknowledged; gives up only at shutdown (the task then stays uncommitted).
       * A record's first failure is a Warning, its retries (every second while the broker is away) Debug.
       */
      const durably = <A>(what: string, attempt: () => Promise<A>, signal: AbortSignal): Promise<A> => {
        let failures = 0
        return untilDone(attempt, signal, (error) =>
          log(failures++ === 0 ? "Warning" : "Debug", `${what} failed; retrying`, { error: String(error).slice(0, 300) }))
      }

      /**
       * A task (a retry, or one not due yet) as a record, with the index offsets it must be handled
       * at and the trace context it came with: every attempt of a delivery has the same parent
       * (the fan-out span), however often it is retried, parked or handed back.
       */
      const taskMessage = (task: DeliveryTask, indexOffsets: IndexOffsets | undefined, trace: RecordTraceContext | undefined): Message => {
        if (indexOffsets === undefined && trace === undefined) return { key: task.endpoint_id, value: encodeDeliveryTask(task) }
        return {
          key: task.endpoint_id,
          value: encodeDeliveryTask(task),
          headers: {
            ...(trace === undefined ? {} : traceHeaders(trace, trace.traceState)),
            ...(indexOffsets === undefined ? {} : { [INDEX_OFFSETS_HEADER]: encodeIndexOffsets(indexOffsets) })
          }
        }
      }

      /**
       * Read-your-writes, whichever process takes the task: this process's index first applies
       * the endpoint topic up to the offsets the fan-out matched the event at (its own index may
       * lag behind the fan-out's), so a write acknowledged before the event was published decides
       * whether the task is delivered and how it is signed. A task without them (a replay) waits
       * for the topic's end offsets measured now.
       */
      const catchUp = (indexOffsets: IndexOffsets | undefined, signal: AbortSignal): Promise<IndexOffsets> =>
        indexOffsets === undefined
          ? durably("endpoint index sync", () => index.syncNow(), signal)
          : durably("endpoint index catch-up", () => index.catchUpNow(indexOffsets).then(() => indexOffsets), signal)

      /** A task back in `webhooks.deliveries`, due now: the one process that owns its endpoint's partition takes it. */
      const handBack = (task: DeliveryTask, indexOffsets: IndexOffsets, trace: RecordTraceContext | undefined, signal: AbortSignal) =>
        durably("handing a rate-limited endpoint's task back to its owner", () =>
          producer.sendNow([{ topic: topics.deliveries.name, messages: [taskMessage(task, indexOffsets, trace)] }], "lingering"), signal)

      /** Puts a task aside in the delay queue until `notBefore`, its attempt not spent. */
      const park = (
        task: DeliveryTask,
        indexOffsets: IndexOffsets,
        trace: RecordTraceContext | undefined,
        notBefore: number,
        signal: AbortSignal,
        what: string
      ) => {
        const parked = { ...task, not_before: new Date(notBefore).toISOString() }
        return durably(what, () => delays.send(taskMessage(parked, indexOffsets, trace), notBefore), signal)
      }

      const process = async (
        task: DeliveryTask,
        taskOffsets: IndexOffsets | undefined,
        signal: AbortSignal,
        fromDelayQueue: boolean,
        trace: RecordTraceContext | undefined
      ): Promise<void> => {
        const notBefore = Date.parse(task.not_before)
        if (notBefore > Date.now()) {
          // Not due: park it in the delay queue (durable) or, for the last second, wait here.
          const ripe = await delays.whenRipe(() => taskMessage(task, taskOffsets, trace), notBefore, signal, (park) =>
            durably("parking a task", park, signal))
          if (ripe === "parked") return
        }
        const indexOffsets = await catchUp(taskOffsets, signal)
        const endpoint = index.get(task.endpoint_id)
        if (endpoint === undefined || !subscribes(endpoint, task.tenant_id, task.mode, task.source_event_type, task.addressed)) {
          log("Info", "delivery cancelled: endpoint deleted, inactive or unsubscribed", {
            delivery_id: task.delivery_id,
            endpoint_id: task.endpoint_id,
            attempt: task.attempt
          }, trace)
          return
        }
        const target = endpoint
        // A rate-limited endpoint is paced by one process at a time: the owner of its partition
        // of `webhooks.deliveries` (tasks are keyed by endpoint id). Its retries and parked tasks
        // come back through the delay queue, whose partitions another process may own, so they
        // return to `webhooks.deliveries` once due.
        if (fromDelayQueue && target.rate_limit_per_second !== null) return handBack(task, indexOffsets, trace, signal)
        const result = await limiter.run(target.id, () => attempt(task, target, signal, trace, taskOffsets !== undefined), {
          group: task.tenant_id,
          ratePerSecond: target.rate_limit_per_second
        })
        if (result === SHED) {
          // The endpoint is unresponsive and being probed: the task waits in the delay queue for
          // about one probe (its attempt not spent) instead of in memory, where a dead endpoint's
          // backlog would fill this consumer's buffer and pause fetching for every endpoint.
          const notBefore = Date.now() + Math.max(1_000, target.timeout_seconds * 1_000)
          return park(task, indexOffsets, trace, notBefore, signal, "parking a task for an unresponsive endpoint")
        }
        if (result instanceof Deferred) {
          // The endpoint's rate limit or Retry-After puts this task's turn past the limiter's
          // horizon: it waits in the delay queue rather than in memory, for the same reason.
          return park(task, indexOffsets, trace, result.until, signal, "parking a task for a rate-limited endpoint")
        }
        await record(task, target, result, indexOffsets, trace, signal)
      }

      /**
       * One attempt, holding a slot of the limiter, in its own span when tracing (a child of the
       * task's trace context, the fan-out span); marks the endpoint responsive or not, and paused
       * on `Retry-After`.
       */
      const attempt = async (
        task: DeliveryTask,
        target: Endpoint,
        signal: AbortSignal,
        trace: RecordTraceContext | undefined,
        fromFanOut: boolean
      ) => {
        if (signal.aborted) throw new Abandoned()
        const span = spans === undefined ? undefined : startAttemptSpan(spans, task, trace)
        metrics.setInFlight(++inFlight)
        const r = await deliverer.attemptNow(task, target).finally(() => metrics.setInFlight(--inFlight))
        if (span !== undefined) endAttemptSpan(spans!, span, r)
        // Replays and redeliveries through the API come without the fan-out's index offsets: not an event's first delivery.
        metrics.attempted(task, r, Date.now(), fromFanOut)
        limiter.setResponsive(target.id, r.errorClass !== "timeout" && r.errorClass !== "connection")
        metrics.setHeldToOne(limiter.unresponsiveCount)
        // A receiver that asks to be left alone (429/503 with Retry-After) gets no attempt before then.
        if (r.retryAfterSeconds !== undefined) limiter.pauseUntil(target.id, Date.now() + Math.min(r.retryAfterSeconds, 86_400) * 1_000)
        return { result: r, span }
      }

      /** The attempt's outcome, durably: its attempt event, and the next attempt in the delay queue or a dead letter. */
      const record = async (
        task: DeliveryTask,
        target: Endpoint,
        { result, span: attemptSpan }: { readonly result: AttemptResult; readonly span: Span | undefined },
        indexOffsets: IndexOffsets,
        trace: RecordTraceContext | undefined,
        signal: AbortSignal
      ) => {
        const now = Date.now()
        const plan = planAfterAttempt({
          task,
          policy: target.retry_policy,
          result,
          now,
          random: Math.random(),
          newId: randomUUID,
          traceId: attemptSpan?.traceId
        })
        const out: Array<TopicMessages> = [{
          topic: topics.attempts.name,
          messages: [{
            key: task.endpoint_id,
            value: attemptedJson(plan.attempted),
            // The attempt log's projection continues the attempt's trace.
            ...(attemptSpan === undefined ? {} : { headers: traceHeaders(attemptSpan) })
          }]
        }]
        if (plan.retry !== undefined) {
          out.push(delays.record(taskMessage(plan.retry, indexOffsets, trace), Date.parse(plan.retry.not_before), now))
        }
        if (plan.dead !== undefined) {
          out.push({ topic: topics.dead.name, messages: [{ key: task.endpoint_id, value: encodeDeliveryDeadLettered(plan.dead) }] })
        }
        await durably("recording an attempt", () => producer.sendNow(out, "lingering"), signal)
        if (plan.dead !== undefined) metrics.deadLettered()
      }

      // A record fetched again (rebalance back to us) while its first copy is still running joins
      // it, unless that copy was abandoned with its partition (it would never finish).
      const running = new Map<string, { readonly work: Promise<void>; readonly signal: AbortSignal }>()
      const handle = (topic: string, _partition: number, message: KafkaMessage, signal: AbortSignal): Promise<void> => {
        let task: DeliveryTask
        try {
          task = decodeDeliveryTask(message.value?.toString("utf8") ?? "")
        } catch (error) {
          log("Warning", "skipped an unreadable delivery task", { offset: message.offset, error: String(error).slice(0, 300) })
          return Promise.resolve()
        }
        // Per topic: a task handed back from the delay queue to `webhooks.deliveries` may be fetched
        // there before its delay-queue copy has finished handing it back, and must not join that.
        const key = `${topic}#${task.delivery_id}#${task.attempt}`
        const existing = running.get(key)
        if (existing !== undefined && !existing.signal.aborted) return existing.work
        const header = message.headers?.[INDEX_OFFSETS_HEADER]
        const offsets = header === undefined ? undefined : decodeIndexOffsets(String(header))
        const trace = spans === undefined ? undefined : traceContextOf(message.headers)
        const work = process(task, offsets, signal, topic !== topics.deliveries.name, trace).finally(() => {
          if (running.get(key)?.work === work) running.delete(key)
        })
        running.set(key, { work, signal })
        return work
      }

      // Two groups: first attempts (latency matters, 6 partitions per fetch) and the delay queue
      // (its many mostly idle or paused partitions would otherwise ride along in every hot fetch).
      const consumerOptions = (group: string) => ({
        kafka,
        groupId: `${topicPrefix}${group}`,
        handle,
        maxOutstanding: config.maxBuffered,
        sessionTimeoutMs: config.sessionTimeoutMs,
        // A partition handed to another process stops here: the endpoints keyed to it are paced
        // (and probed) by one process at a time.
        abandonRevoked: true,
        onError: (message: string, error: unknown) => void run(logKafkaRetry(message, error)),
        onJoin: (info: Record<string, unknown>) => log("Info", "consumer group joined", info)
      })
      const consumers = [
        new DecoupledConsumer({
          ...consumerOptions("orbit-dispatcher-delivery"),
          topics: [topics.deliveries.name],
          onJoin: (info: Record<string, unknown>) => {
            // Endpoints' partitions may have moved here: their pace starts one interval from now.
            limiter.restartPacing()
            log("Info", "consumer group joined", info)
          }
        }),
        delays.consumer(consumerOptions("orbit-dispatcher-retry"))
      ]
      const outstanding = () => consumers.reduce((n, c) => n + c.outstanding, 0)

      const deliverNow = (
        task: DeliveryTask,
        indexOffsets: IndexOffsets,
        signal: AbortSignal,
        trace: RecordTraceContext | undefined
      ): Promise<void> | undefined => {
        const target = index.get(task.endpoint_id)
        // A rate-limited endpoint is paced by the owner of its partition of `webhooks.deliveries` only.
        if (target === undefined || target.rate_limit_per_second !== null || signal.aborted) return undefined
        if (!subscribes(target, task.tenant_id, task.mode, task.source_event_type, task.addressed)) return undefined
        const started = limiter.runIfReady(target.id, () => attempt(task, target, signal, trace, true), { group: task.tenant_id })
        return started?.then((attempted) => record(task, target, attempted, indexOffsets, trace, signal))
      }
      yield* Effect.acquireRelease(
        Effect.tryPromise(() => Promise.all(consumers.map((c) => c.start()))).pipe(
          Effect.tapError((e) => logKafkaRetry("delivery consumer cannot start yet; retrying", e)),
          Effect.retry(Schedule.spaced("1 second"))
        ),
        () =>
          Effect.logInfo("delivery worker stopping", { outstanding: outstanding() }).pipe(
            Effect.andThen(Effect.promise(() => Promise.all(consumers.map((c) => c.stop(config.shutdownGraceMs)))))
          )
      )
      yield* Effect.logInfo("delivery worker started", { concurrency: config.concurrency, perEndpoint: config.perEndpointConcurrency })
      return DeliveryWorker.of({ outstanding, deliverNow })
    })
  )
}
