import { SecretBox, type SecretDecryptError, generateWebhookSecret } from "@orbit/crypto"
import type { DbUnavailable } from "@orbit/db"
import {
  decide,
  type DecideContext,
  type Endpoint,
  type EndpointCommand,
  type EndpointEvent,
  type EndpointNotFound,
  type EndpointRejection,
  type DisabledReason,
  type Mode,
  type UrlRefused,
  type UrlVerdict,
  encodeEndpointEvent,
  evolve,
  newEndpointId,
  newEventId,
  normalizeRetryPolicy,
  topicsFor
} from "@orbit/domain"
import { KafkaClient, type KafkaUnavailable, Producer } from "@orbit/kafka"
import { NetGuard } from "@orbit/net-guard"
import { Config, Context, Effect, Layer, Metric, Result, Schema } from "effect"
import type { CreateEndpointRequest, UpdateEndpointRequest } from "./api/EndpointSchemas.ts"
import type { Principal } from "./ApiKeys.ts"
import { type EndpointResource, EndpointStore } from "./EndpointStore.ts"
import { ProjectionWatcher } from "./ProjectionWatcher.ts"
import { readYourWritesWait } from "./RegistrationMetrics.ts"
import { placeOf, resealOf } from "./SecretSeals.ts"

/** How long a write waits for the projection before answering anyway (the event is durable). */
const READ_YOUR_WRITES_TIMEOUT_MS = 10_000

/** How long a rotated-out secret keeps signing when the caller does not say. */
const DEFAULT_GRACE_SECONDS = 86_400

export interface Registered {
  readonly resource: EndpointResource
  readonly signingSecret: string
  readonly secretBox: string
}

/**
 * Writes in flight (produced or waiting to be, or waiting for the projection) at most, per
 * process; a write beyond them is refused at once with `WritesBusy` (503 with Retry-After)
 * rather than queued behind the others.
 */
const WriteQueueSize = Config.schema(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)), "ORBIT_WRITE_QUEUE_SIZE").pipe(
  Config.withDefault(1024)
)

/** The write queue is full; nothing was written. */
export class WritesBusy extends Schema.TaggedError<WritesBusy>()("WritesBusy", {
  retryAfterSeconds: Schema.Int
}) {}

/** A registration decided but not yet written: the caller appends it (after claiming an idempotency key, say). */
export interface DecidedRegistration {
  readonly registered: Registered
  /** The event to append; a retry of the same request appends the very same event again. */
  readonly event: EndpointEvent
  readonly append: Effect.Effect<void, KafkaUnavailable | WritesBusy>
}

/** The rejections a caller sees: the shell vets a URL whenever the decider asks, so `UrlUnvetted` never escapes. */
export type CommandRejection = EndpointNotFound | UrlRefused

const settingsOf = (req: UpdateEndpointRequest) => ({
  url: req.url,
  events: req.events,
  description: req.description ?? null,
  active: req.active ?? true,
  timeout_seconds: req.timeout_seconds ?? 30,
  retry_policy: normalizeRetryPolicy(req.retry_policy),
  headers: req.headers ?? {},
  rate_limit_per_second: req.rate_limit_per_second ?? null
})

/** The resource of API.md §3: the state without its scope and secrets (the rest keeps its order). */
const resourceOf = (state: Endpoint): EndpointResource => {
  const { tenant_id: _t, mode: _m, secret_box: _s, previous_secret_box: _p, previous_expires_at: _e, ...resource } = state
  return resource
}

const scopeOf = (p: Principal) => ({ tenant_id: p.tenantId, mode: p.mode })

const withVerdict = (command: EndpointCommand, url_verdict: UrlVerdict): EndpointCommand =>
  command._tag === "RegisterEndpoint" || command._tag === "UpdateEndpoint" ? { ...command, url_verdict } : command

const contextNow = (): DecideContext => ({ now: new Date().toISOString(), event_id: newEventId() })

/**
 * The endpoint aggregate's command side, around the pure decider of @orbit/domain: load the state,
 * `decide`, append the events to `webhooks.endpoint-events` (keyed by endpoint id, so one
 * endpoint's events stay ordered), and return once the projection has applied them, so the
 * caller's next read sees the change. The I/O the decider must not do happens here: the clock,
 * fresh ids, the sealed secret, and vetting a URL when the decider asks for it.
 */
export class EndpointCommands extends Context.Service<EndpointCommands, {
  /** Vets the URL and decides; appending is left to the caller. */
  register(p: Principal, req: CreateEndpointRequest): Effect.Effect<DecidedRegistration, CommandRejection>
  /**
   * Appends an event decided earlier (a registration whose first append failed or timed out, or
   * whose outcome its caller never learned): appended again as it is, so it registers the same
   * endpoint once, whether or not the first append reached Kafka.
   */
  appendAgain(event: EndpointEvent): Effect.Effect<void, KafkaUnavailable | WritesBusy>
  update(p: Principal, id: string, req: UpdateEndpointRequest): Effect.Effect<EndpointResource, CommandRejection | KafkaUnavailable | DbUnavailable | WritesBusy>
  remove(p: Principal, id: string): Effect.Effect<void, CommandRejection | KafkaUnavailable | DbUnavailable | WritesBusy>
  rotateSecret(
    p: Principal,
    id: string,
    options: { secret?: string | undefined; graceSeconds?: number | undefined }
  ): Effect.Effect<Registered, CommandRejection | KafkaUnavailable | DbUnavailable | WritesBusy>
  /**
   * Seals the endpoint's secrets anew under the ring's first key, bound to their place, when they
   * are not already (`orbit secrets reseal`). Answers what it did; fails when a box that needs it
   * does not open with the ring.
   */
  reseal(id: string): Effect.Effect<"resealed" | "current" | "absent", SecretDecryptError | KafkaUnavailable | DbUnavailable>
  /**
   * The platform's own command (no caller key): disables a failing endpoint of (tenant, mode).
   * Returns when and why, or undefined when the endpoint was already off (nothing written).
   */
  disable(
    scope: { tenantId: string; mode: Mode },
    id: string,
    lastStatus: number | null
  ): Effect.Effect<{ readonly reason: DisabledReason; readonly disabled_at: string } | undefined, CommandRejection | KafkaUnavailable | DbUnavailable>
}>()("@orbit/registration/EndpointCommands") {
  static readonly layer = Layer.effect(
    EndpointCommands,
    Effect.gen(function*() {
      const producer = yield* Producer
      const box = yield* SecretBox
      const watcher = yield* ProjectionWatcher
      const store = yield* EndpointStore
      const guard = yield* NetGuard
      const { topicPrefix } = yield* KafkaClient
      const topic = topicsFor(topicPrefix).endpointEvents.name
      const queueSize = yield* WriteQueueSize
      let inFlight = 0

      /**
       * Runs an API write inside the bounded write queue: refused at once when it is full. Concurrent
       * writes share produce requests (the producer merges them) and projection waits.
       */
      const admitted = <A, E, R>(write: Effect.Effect<A, E, R>): Effect.Effect<A, E | WritesBusy, R> =>
        Effect.suspend((): Effect.Effect<A, E | WritesBusy, R> => {
          if (inFlight >= queueSize) return Effect.fail(new WritesBusy({ retryAfterSeconds: 1 }))
          inFlight++
          return Effect.ensuring(write, Effect.sync(() => inFlight--))
        })

      const appendOne = Effect.fn("EndpointCommands.append")(function*(event: EndpointEvent) {
        const started = performance.now()
        const [meta] = yield* producer.send(topic, [{ key: event.endpoint_id, value: encodeEndpointEvent(event) }])
        if (meta === undefined) return
        const produced = performance.now()
        const applied = yield* watcher.waitForOffset(meta.topicName, meta.partition, meta.offset, READ_YOUR_WRITES_TIMEOUT_MS)
        yield* Metric.update(readYourWritesWait, (performance.now() - produced) / 1_000)
        yield* Effect.logDebug("endpoint event appended", {
          event_id: event.event_id,
          produce_ms: Math.round(produced - started),
          projection_wait_ms: Math.round(performance.now() - produced)
        })
        if (!applied) {
          yield* Effect.logWarning("projection did not apply a write in time", { event_id: event.event_id })
        }
      })

      /** Appends the decided events in order, each awaited by the projection before the next. */
      const append = (events: ReadonlyArray<EndpointEvent>) => Effect.forEach(events, appendOne, { discard: true })

      const vet = (url: string): Effect.Effect<UrlVerdict> =>
        guard.vetForRegistration(url).pipe(
          Effect.as<UrlVerdict>({ _tag: "UrlAccepted" }),
          Effect.catchTag("ForbiddenUrl", (e) => Effect.succeed<UrlVerdict>({ _tag: "UrlRefused", reason: e.reason }))
        )

      /**
       * Decides, vetting the URL first when the decider asks for it, then deciding again with the
       * verdict (and a fresh clock, so the event's instant follows the DNS lookup).
       */
      const decideVetting = Effect.fnUntraced(function*(command: EndpointCommand, state: Endpoint | undefined) {
        let decision = decide(command, state, contextNow())
        if (Result.isFailure(decision) && decision.failure._tag === "UrlUnvetted") {
          decision = decide(withVerdict(command, yield* vet(decision.failure.url)), state, contextNow())
        }
        if (Result.isSuccess(decision)) return decision.success
        const rejection: EndpointRejection = decision.failure
        switch (rejection._tag) {
          case "EndpointNotFound":
          case "UrlRefused":
            return yield* Effect.fail(rejection)
          default:
            return yield* Effect.die(rejection)
        }
      })

      /** The state after the events, as the projection will hold it. */
      const fold = (state: Endpoint | undefined, events: ReadonlyArray<EndpointEvent>) => events.reduce(evolve, state)

      /**
       * Seals the endpoint's secrets anew when its boxes are not in today's form (an older box
       * version, or a key that is no longer the ring's first): every write of an endpoint brings
       * its boxes up to date. A box that does not open is left as it is, with a warning.
       */
      const resealAfterWrite = Effect.fnUntraced(function*(state: Endpoint | undefined) {
        if (state === undefined) return
        const command = yield* resealOf(state, Date.now()).pipe(
          Effect.provideService(SecretBox, box),
          Effect.catchTag("SecretDecryptError", (e) =>
            Effect.logWarning("endpoint secret left sealed as it was: it does not open with the key ring", {
              endpoint_id: state.id,
              reason: e.reason
            }).pipe(Effect.as(undefined)))
        )
        if (command !== undefined) yield* append(yield* decideVetting(command, state))
      })

      const register = Effect.fn("EndpointCommands.register")(function*(p: Principal, req: CreateEndpointRequest) {
        const signingSecret = req.secret ?? generateWebhookSecret()
        const endpoint_id = newEndpointId()
        const secretBox = yield* box.encrypt(signingSecret, { ...scopeOf(p), endpoint_id, slot: "current" })
        const command = {
          _tag: "RegisterEndpoint" as const,
          ...scopeOf(p),
          endpoint_id,
          settings: settingsOf(req),
          secret_box: secretBox
        }
        const events = yield* decideVetting(command, undefined)
        const registered: Registered = { resource: resourceOf(fold(undefined, events)!), signingSecret, secretBox }
        return { registered, event: events[0]!, append: admitted(append(events)) }
      })

      const appendAgain = (event: EndpointEvent) => admitted(appendOne(event))

      const update = Effect.fn("EndpointCommands.update")(function*(p: Principal, id: string, req: UpdateEndpointRequest) {
        const state = yield* store.load(id)
        const events = yield* decideVetting({ _tag: "UpdateEndpoint", ...scopeOf(p), endpoint_id: id, settings: settingsOf(req) }, state)
        yield* admitted(append(events))
        const updated = fold(state, events)
        yield* resealAfterWrite(updated)
        return resourceOf(updated!)
      })

      const remove = Effect.fn("EndpointCommands.remove")(function*(p: Principal, id: string) {
        const state = yield* store.load(id)
        yield* admitted(append(yield* decideVetting({ _tag: "RemoveEndpoint", ...scopeOf(p), endpoint_id: id }, state)))
      })

      /**
       * The current secret sealed for the previous slot, for a rotation. Only an endpoint of the
       * caller's scope is opened (any other is refused by the decider). A current box that does
       * not open moves over as it is: it then does not sign in the grace window either, as before.
       */
      const asPrevious = Effect.fnUntraced(function*(state: Endpoint | undefined, scope: ReturnType<typeof scopeOf>) {
        if (state === undefined || state.tenant_id !== scope.tenant_id || state.mode !== scope.mode) return ""
        return yield* box.decrypt(state.secret_box, placeOf(state, "current")).pipe(
          Effect.flatMap((plain) => box.encrypt(plain, placeOf(state, "previous"))),
          Effect.catchTag("SecretDecryptError", (e) =>
            Effect.logWarning("rotating an endpoint whose current secret does not open with the key ring", {
              endpoint_id: state.id,
              reason: e.reason
            }).pipe(Effect.as(state.secret_box)))
        )
      })

      const rotateSecret = Effect.fn("EndpointCommands.rotateSecret")(function*(
        p: Principal,
        id: string,
        options: { secret?: string | undefined; graceSeconds?: number | undefined }
      ) {
        const state = yield* store.load(id)
        const scope = scopeOf(p)
        const signingSecret = options.secret ?? generateWebhookSecret()
        const secretBox = yield* box.encrypt(signingSecret, { ...scope, endpoint_id: id, slot: "current" })
        const events = yield* decideVetting({
          _tag: "RotateEndpointSecret",
          ...scope,
          endpoint_id: id,
          secret_box: secretBox,
          previous_secret_box: yield* asPrevious(state, scope),
          grace_seconds: options.graceSeconds ?? DEFAULT_GRACE_SECONDS
        }, state)
        yield* admitted(append(events))
        return { resource: resourceOf(fold(state, events)!), signingSecret, secretBox }
      })

      const reseal = Effect.fn("EndpointCommands.reseal")(function*(id: string) {
        const state = yield* store.load(id)
        if (state === undefined) return "absent" as const
        const command = yield* resealOf(state, Date.now()).pipe(Effect.provideService(SecretBox, box))
        if (command === undefined) return "current" as const
        // Decided on the state just read; a rotation appended meanwhile makes this a no-op when applied.
        yield* append(yield* decideVetting(command, state).pipe(Effect.orDie))
        return "resealed" as const
      })

      const disable = Effect.fn("EndpointCommands.disable")(function*(
        scope: { tenantId: string; mode: Mode },
        id: string,
        lastStatus: number | null
      ) {
        const state = yield* store.load(id)
        const events = yield* decideVetting({
          _tag: "DisableEndpoint",
          tenant_id: scope.tenantId,
          mode: scope.mode,
          endpoint_id: id,
          reason: "failing",
          last_status: lastStatus
        }, state)
        if (events.length === 0) return undefined
        yield* append(events)
        const after = fold(state, events)!
        return { reason: after.disabled_reason!, disabled_at: after.disabled_at! }
      })

      return EndpointCommands.of({ register, appendAgain, update, remove, rotateSecret, reseal, disable })
    })
  )
}
