import { type DomainEvent, deliveryIdFor, encodeDomainEvent, newEventId, topicsFor } from "@orbit/domain"
import { KafkaClient, type KafkaUnavailable, Producer } from "@orbit/kafka"
import { Context, Effect, Layer } from "effect"
import type { Principal } from "./ApiKeys.ts"

export interface TestEventSent {
  readonly event_id: string
  /** The `X-Devotel-Delivery-Id` the test delivery will carry, and its id in the attempt log. */
  readonly delivery_id: string
  readonly endpoint_id: string
  readonly type: "webhook.test"
}

/**
 * `POST /api/v1/webhooks/{id}/test`: publishes a `webhook.test` domain event on `orbit.events`,
 * addressed to that one endpoint (`endpoint_id`), exactly as an upstream producer would publish any
 * event. The dispatcher then delivers it like every other event (signed, retried per the endpoint's
 * policy, in the attempt log), so a test exercises the real delivery path.
 */
export class TestEvents extends Context.Service<TestEvents, {
  send(p: Principal, endpointId: string): Effect.Effect<TestEventSent, KafkaUnavailable>
}>()("@orbit/registration/TestEvents") {
  static readonly layer = Layer.effect(
    TestEvents,
    Effect.gen(function*() {
      const producer = yield* Producer
      const { topicPrefix } = yield* KafkaClient
      const topic = topicsFor(topicPrefix).sourceEvents.name

      const send = Effect.fn("TestEvents.send")(function*(p: Principal, endpointId: string) {
        const event: DomainEvent = {
          id: newEventId(),
          type: "webhook.test",
          tenant_id: p.tenantId,
          mode: p.mode,
          created_at: new Date().toISOString(),
          data: { endpoint_id: endpointId, message: "A test event sent from the Orbit Webhooks API." },
          endpoint_id: endpointId
        }
        // Keyed by tenant, as API.md §8 asks of every producer of this topic.
        yield* producer.send(topic, [{ key: p.tenantId, value: encodeDomainEvent(event) }])
        return { event_id: event.id, delivery_id: deliveryIdFor(event.id, endpointId), endpoint_id: endpointId, type: "webhook.test" as const }
      })

      return TestEvents.of({ send })
    })
  )
}
