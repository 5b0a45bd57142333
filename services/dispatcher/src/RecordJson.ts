import type { DeliveryAttempted, DeliveryTask } from "@orbit/domain"

/**
 * JSON of the two records the dispatcher writes per delivery, without running the Schema
 * encoder. `DeliveryTask` and `DeliveryAttempted` are structs of strings, integers, booleans,
 * literals and nulls with no transformations, so their encoded form is the typed value itself
 * and `JSON.stringify` yields exactly the encoder's output (`pure.test.ts` checks this against
 * `encodeDeliveryTask` / `encodeDeliveryAttempted`, so a schema change that adds a transformation
 * fails there). The values are built by typed code; the Schema still decodes every record read.
 * Two records per delivery make the encoder a visible share of the dispatcher's CPU at full load.
 */
export const taskJson = (task: DeliveryTask): string => JSON.stringify(task)
export const attemptedJson = (attempted: DeliveryAttempted): string => JSON.stringify(attempted)
