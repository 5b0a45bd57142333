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
  retries: spec(`${prefix}webhooks.deliveries.retry`, 6, 7 * DAY_MS),
  dead: spec(`${prefix}webhooks.deliveries.dead`, 3, 30 * DAY_MS),
  attempts: spec(`${prefix}webhooks.delivery-attempts`, 3, 30 * DAY_MS)
})

export type Topics = ReturnType<typeof topicsFor>
