/** Every Kafka topic the platform uses, with partitions and retention (DESIGN.md "Topics"). */
const DAY_MS = 24 * 60 * 60 * 1000

export interface TopicSpec {
  readonly name: string
  readonly partitions: number
  /** -1 keeps records forever. */
  readonly retentionMs: number
}

const spec = (name: string, partitions: number, retentionMs: number): TopicSpec => ({ name, partitions, retentionMs })

/**
 * Topic names can be prefixed (`ORBIT_TOPIC_PREFIX`) so that test runs and environments on a
 * shared broker never see each other's records.
 */
export const topicsFor = (prefix = "") => ({
  endpointEvents: spec(`${prefix}webhooks.endpoint-events`, 3, -1),
  sourceEvents: spec(`${prefix}orbit.events`, 6, 7 * DAY_MS),
  invalidEvents: spec(`${prefix}orbit.events.invalid`, 1, 7 * DAY_MS),
  deliveries: spec(`${prefix}webhooks.deliveries`, 6, 7 * DAY_MS),
  // The tiers of the delivery delay queue (`DelayQueue` in @orbit/kafka, which gives each its
  // delay): a record waits in the tier whose delay is the largest one not exceeding its remaining
  // wait, then hops to a shorter one or is delivered.
  retry1s: spec(`${prefix}webhooks.deliveries.retry.1s`, 6, 7 * DAY_MS),
  retry5s: spec(`${prefix}webhooks.deliveries.retry.5s`, 6, 7 * DAY_MS),
  retry30s: spec(`${prefix}webhooks.deliveries.retry.30s`, 6, 7 * DAY_MS),
  retry2m: spec(`${prefix}webhooks.deliveries.retry.2m`, 6, 7 * DAY_MS),
  retry10m: spec(`${prefix}webhooks.deliveries.retry.10m`, 6, 7 * DAY_MS),
  retry1h: spec(`${prefix}webhooks.deliveries.retry.1h`, 6, 7 * DAY_MS),
  retry4h: spec(`${prefix}webhooks.deliveries.retry.4h`, 6, 7 * DAY_MS),
  dead: spec(`${prefix}webhooks.deliveries.dead`, 3, 30 * DAY_MS),
  attempts: spec(`${prefix}webhooks.delivery-attempts`, 3, 30 * DAY_MS)
})

export type Topics = ReturnType<typeof topicsFor>
