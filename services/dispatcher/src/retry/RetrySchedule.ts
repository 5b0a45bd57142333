import {
  type DeliveryAttempted,
  type DeliveryDeadLettered,
  type DeliveryTask,
  type AttemptErrorClass,
  nextAttemptAt,
  type RetryPolicy
} from "@orbit/domain"

/** What one HTTP attempt came to (the Deliverer's result). */
export interface AttemptResult {
  readonly ok: boolean
  readonly httpStatus: number | null
  readonly durationMs: number
  readonly errorClass: AttemptErrorClass | null
  readonly errorMessage: string | null
  /** Seconds from a `Retry-After` header of a 429/503, if any. */
  readonly retryAfterSeconds: number | undefined
}

/** The records that make an attempt's outcome durable. */
export interface AttemptPlan {
  readonly attempted: DeliveryAttempted
  readonly retry: DeliveryTask | undefined
  readonly dead: DeliveryDeadLettered | undefined
}

/**
 * Decides what follows an attempt (pure): success ends the delivery; a failure schedules the next
 * attempt per the endpoint's policy (never early, Retry-After honoured) or dead-letters it.
 */
export const planAfterAttempt = (input: {
  readonly task: DeliveryTask
  readonly policy: RetryPolicy
  readonly result: AttemptResult
  readonly now: number
  readonly random: number
  readonly newId: () => string
  /** The trace of the attempt's span, recorded with the attempt. */
  readonly traceId?: string | undefined
}): AttemptPlan => {
  const { task, result, now } = input
  const at = new Date(now).toISOString()
  const ids = {
    delivery_id: task.delivery_id,
    endpoint_id: task.endpoint_id,
    tenant_id: task.tenant_id,
    mode: task.mode,
    source_event_id: task.source_event_id,
    source_event_type: task.source_event_type
  }
  // A single attempt (`once`) ends with its outcome: no retry, no dead letter.
  const next = result.ok || task.once
    ? undefined
    : nextAttemptAt({
      policy: input.policy,
      attempt: task.attempt,
      failedAt: now,
      retryAfterSeconds: result.retryAfterSeconds,
      random: input.random
    })
  const isDead = !result.ok && next === undefined && !task.once
  const attempted: DeliveryAttempted = {
    _tag: "DeliveryAttempted",
    schema_version: 1,
    event_id: input.newId(),
    occurred_at: at,
    ...ids,
    attempt: task.attempt,
    outcome: result.ok ? "succeeded" : "failed",
    http_status: result.httpStatus,
    duration_ms: Math.max(0, Math.round(result.durationMs)),
    error_class: result.errorClass,
    error_message: result.errorMessage,
    next_attempt_at: next === undefined ? null : new Date(next).toISOString(),
    dead_lettered: isDead,
    // The first attempt of a chain carries the body into the attempts read model (recovery, retry).
    ...(task.attempt === 1 ? { body: task.body } : {}),
    ...(task.attempt === 1 && task.addressed ? { addressed: true as const } : {}),
    ...(input.traceId === undefined ? {} : { trace_id: input.traceId })
  }
  const retry: DeliveryTask | undefined = next === undefined ? undefined : {
    ...task,
    event_id: input.newId(),
    occurred_at: at,
    attempt: task.attempt + 1,
    not_before: new Date(next).toISOString()
  }
  const dead: DeliveryDeadLettered | undefined = !isDead ? undefined : {
    _tag: "DeliveryDeadLettered",
    schema_version: 1,
    event_id: input.newId(),
    occurred_at: at,
    ...ids,
    body: task.body,
    attempts: task.attempt,
    last_http_status: result.httpStatus,
    last_error_class: result.errorClass,
    ...(task.addressed ? { addressed: true as const } : {})
  }
  return { attempted, retry, dead }
}

/** `Retry-After` as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3); undefined if absent or bad. */
export const parseRetryAfter = (value: string | undefined, now: number): number | undefined => {
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (/^\d{1,10}$/.test(trimmed)) return Number(trimmed)
  const date = Date.parse(trimmed)
  if (Number.isNaN(date)) return undefined
  return Math.max(0, Math.ceil((date - now) / 1000))
}
