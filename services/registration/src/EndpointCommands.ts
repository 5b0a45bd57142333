import { SecretBox, generateWebhookSecret } from "@orbit/crypto"
import {
  type EndpointEvent,
  encodeEndpointEvent,
  newEndpointId,
  newEventId,
  normalizeRetryPolicy,
  topicsFor
} from "@orbit/domain"
import { KafkaClient, type KafkaUnavailable, Producer } from "@orbit/kafka"
import { Context, Effect, Layer } from "effect"
import type { CreateEndpointRequest, UpdateEndpointRequest } from "./api/EndpointSchemas.ts"
import type { Principal } from "./ApiKeys.ts"
import type { EndpointResource } from "./EndpointStore.ts"
import { ProjectionWatcher } from "./ProjectionWatcher.ts"

/** How long a write waits for the projection before answering anyway (the event is durable). */
const READ_YOUR_WRITES_TIMEOUT_MS = 10_000

export interface Registered {
  readonly resource: EndpointResource
  readonly signingSecret: string
  readonly secretBox: string
}

const settingsOf = (req: UpdateEndpointRequest) => ({
  url: req.url,
  events: req.events,
  description: req.description ?? null,
  active: req.active ?? true,
  timeout_seconds: req.timeout_seconds ?? 30,
  retry_policy: normalizeRetryPolicy(req.retry_policy)
})

/**
 * The endpoint aggregate's command side: each command appends one event to
 * `webhooks.endpoint-events` (keyed by endpoint id, so one endpoint's events stay ordered) and
 * returns once the projection has applied it, so the caller's next read sees the change.
 */
export class EndpointCommands extends Context.Service<EndpointCommands, {
  register(p: Principal, req: CreateEndpointRequest): Effect.Effect<Registered, KafkaUnavailable>
  update(p: Principal, existing: EndpointResource, req: UpdateEndpointRequest): Effect.Effect<EndpointResource, KafkaUnavailable>
  remove(p: Principal, id: string): Effect.Effect<void, KafkaUnavailable>
  rotateSecret(
    p: Principal,
    existing: EndpointResource,
    currentBox: string,
    options: { secret?: string; graceSeconds: number }
  ): Effect.Effect<Registered, KafkaUnavailable>
}>()("@orbit/registration/EndpointCommands") {
  static readonly layer = Layer.effect(
    EndpointCommands,
    Effect.gen(function*() {
      const producer = yield* Producer
      const box = yield* SecretBox
      const watcher = yield* ProjectionWatcher
      const { topicPrefix } = yield* KafkaClient
      const topic = topicsFor(topicPrefix).endpointEvents.name

      const append = Effect.fn("EndpointCommands.append")(function*(event: EndpointEvent) {
        const started = performance.now()
        const [meta] = yield* producer.send(topic, [{ key: event.endpoint_id, value: encodeEndpointEvent(event) }])
        if (meta?.baseOffset === undefined) return
        const produced = performance.now()
        const applied = yield* watcher.waitForOffset(meta.topicName, meta.partition, BigInt(meta.baseOffset), READ_YOUR_WRITES_TIMEOUT_MS)
        yield* Effect.logDebug("endpoint event appended", {
          event_id: event.event_id,
          produce_ms: Math.round(produced - started),
          projection_wait_ms: Math.round(performance.now() - produced)
        })
        if (!applied) {
          yield* Effect.logWarning("projection did not apply a write in time", { event_id: event.event_id })
        }
      })

      const envelope = (p: Principal, endpointId: string) => ({
        schema_version: 1 as const,
        event_id: newEventId(),
        occurred_at: new Date().toISOString(),
        endpoint_id: endpointId,
        tenant_id: p.tenantId,
        mode: p.mode
      })

      const register = Effect.fn("EndpointCommands.register")(function*(p: Principal, req: CreateEndpointRequest) {
        const signingSecret = req.secret ?? generateWebhookSecret()
        const secretBox = yield* box.encrypt(signingSecret)
        const event = {
          _tag: "EndpointRegistered" as const,
          ...envelope(p, newEndpointId()),
          ...settingsOf(req),
          secret_box: secretBox
        }
        yield* append(event)
        const { _tag, schema_version, event_id, occurred_at, endpoint_id, tenant_id, mode, secret_box, ...settings } = event
        return {
          resource: { id: endpoint_id, ...settings, created_at: occurred_at, updated_at: occurred_at },
          signingSecret,
          secretBox
        }
      })

      const update = Effect.fn("EndpointCommands.update")(function*(p: Principal, existing: EndpointResource, req: UpdateEndpointRequest) {
        const event = { _tag: "EndpointUpdated" as const, ...envelope(p, existing.id), ...settingsOf(req) }
        yield* append(event)
        const { _tag, schema_version, event_id, occurred_at, endpoint_id, tenant_id, mode, ...settings } = event
        return { ...existing, ...settings, updated_at: occurred_at }
      })

      const remove = Effect.fn("EndpointCommands.remove")(function*(p: Principal, id: string) {
        yield* append({ _tag: "EndpointDeleted", ...envelope(p, id) })
      })

      const rotateSecret = Effect.fn("EndpointCommands.rotateSecret")(function*(
        p: Principal,
        existing: EndpointResource,
        currentBox: string,
        options: { secret?: string; graceSeconds: number }
      ) {
        const signingSecret = options.secret ?? generateWebhookSecret()
        const secretBox = yield* box.encrypt(signingSecret)
        const env = envelope(p, existing.id)
        yield* append({
          _tag: "EndpointSecretRotated",
          ...env,
          secret_box: secretBox,
          previous_secret_box: currentBox,
          // The old secret keeps signing alongside the new one, so receivers can switch over.
          previous_expires_at: new Date(Date.parse(env.occurred_at) + options.graceSeconds * 1000).toISOString()
        })
        return { resource: { ...existing, updated_at: env.occurred_at }, signingSecret, secretBox }
      })

      return EndpointCommands.of({ register, update, remove, rotateSecret })
    })
  )
}
