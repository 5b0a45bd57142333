import { createHash } from "node:crypto"
import { Db, type DbUnavailable, query, type Sql } from "@orbit/db"
import { type DomainEvent, encodeDomainEvent, type Mode, topicsFor } from "@orbit/domain"
import { KafkaClient, type KafkaUnavailable, Producer } from "@orbit/kafka"
import { Cause, Config, Context, Duration, Effect, Layer, Schedule, Schema } from "effect"
import { EndpointCommands } from "./EndpointCommands.ts"
import { withStreakStarts } from "./StreakStarts.ts"

/** The attempt log keeps 30 days, so a longer period could never be observed. */
export const MAX_AUTO_DISABLE_SECONDS = 30 * 86_400
export const DEFAULT_AUTO_DISABLE_SECONDS = 5 * 86_400
/** An endpoint is disabled only after at least this many failed attempts in its streak. */
export const MIN_FAILED_ATTEMPTS = 10
/** Endpoints disabled per sweep at most; the next sweep takes the rest. */
const SWEEP_LIMIT = 500

const ISO_DURATION = /^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/

/**
 * `ORBIT_AUTO_DISABLE_AFTER` in seconds (pure): whole seconds (`432000`) or an ISO-8601 duration
 * of weeks, days, hours, minutes and whole seconds (`P5D`, `PT36H`, `PT3S`); undefined when it is
 * neither, or outside 1 second to 30 days.
 */
export const parseAutoDisableAfter = (text: string): number | undefined => {
  let seconds: number
  if (/^[0-9]{1,9}$/.test(text)) {
    seconds = Number(text)
  } else {
    const m = ISO_DURATION.exec(text)
    if (m === null || text === "P" || text.endsWith("T")) return undefined
    const [w, d, h, min, s] = m.slice(1).map((x) => (x === undefined ? 0 : Number(x)))
    seconds = w! * 7 * 86_400 + d! * 86_400 + h! * 3600 + min! * 60 + s!
  }
  return seconds >= 1 && seconds <= MAX_AUTO_DISABLE_SECONDS ? seconds : undefined
}

const AutoDisableAfterText = Schema.String.check(
  Schema.makeFilter((s: string) => parseAutoDisableAfter(s) !== undefined, {
    expected: "whole seconds or an ISO-8601 duration (e.g. 432000, P5D, PT36H), from 1 second to 30 days"
  })
)

/** How long every attempt to an endpoint must have failed before it is disabled (default 5 days). */
export const AutoDisableAfter = Config.schema(AutoDisableAfterText, "ORBIT_AUTO_DISABLE_AFTER").pipe(
  Config.map((s) => parseAutoDisableAfter(s)!),
  Config.withDefault(DEFAULT_AUTO_DISABLE_SECONDS)
)

/** A sweep runs a few times per period, at least once a minute and at most once a second. */
export const sweepIntervalSeconds = (afterSeconds: number): number => Math.min(60, Math.max(1, Math.floor(afterSeconds / 4)))

/** The `webhook.endpoint.disabled` event's id: one per disabled streak, so a repeated notice dedupes. */
export const disabledNoticeId = (endpointId: string, streakSince: string): string =>
  `evt_${createHash("sha256").update(`webhook.endpoint.disabled\u0000${endpointId}\u0000${streakSince}`).digest("hex").slice(0, 32)}`

export interface FailingEndpoint {
  readonly id: string
  readonly tenant_id: string
  readonly mode: Mode
  /** Where the streak is counted from: the later of the last success and the last change of the endpoint. */
  readonly since: string
  readonly failures: number
  readonly last_status: number | null
}

/**
 * Active endpoints due to be disabled (at most `limit`): the streak of an endpoint is its attempts
 * after `since` (`withStreakStarts`); it is due with at least MIN_FAILED_ATTEMPTS of them, the
 * first at least `afterSeconds` ago. Read through the attempt log's (endpoint_id, occurred_at) index.
 */
export const failingEndpoints = (sql: Sql, afterSeconds: number, limit = SWEEP_LIMIT) =>
  sql<Array<FailingEndpoint>>`
    ${withStreakStarts(sql)}
    SELECT c.id, c.tenant_id, c.mode,
      to_char(c.since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS since,
      count(*)::int AS failures,
      (array_agg(a.http_status ORDER BY a.occurred_at DESC, a.id DESC))[1] AS last_status
    FROM active c JOIN delivery_attempts a ON a.endpoint_id = c.id AND a.occurred_at > c.since
    GROUP BY c.id, c.tenant_id, c.mode, c.since
    HAVING count(*) >= ${MIN_FAILED_ATTEMPTS} AND min(a.occurred_at) <= now() - make_interval(secs => ${afterSeconds})
    ORDER BY c.id
    LIMIT ${limit}`

/**
 * Turns off endpoints that keep failing. The failure streak is read from the attempt read model
 * (`delivery_attempts`, written by the projection from `webhooks.delivery-attempts`), so it
 * survives any restart and sees the attempts of every dispatcher process: an active endpoint whose
 * attempts since its last success (and since it last changed: a PUT, a rotation, a re-enable starts
 * a new streak) are all failures, at least MIN_FAILED_ATTEMPTS of them, the first at least
 * `ORBIT_AUTO_DISABLE_AFTER` ago. Each is disabled through the endpoint decider (EndpointCommands,
 * the one writer of `webhooks.endpoint-events`), then a `webhook.endpoint.disabled` event goes on
 * `orbit.events` for the tenant's endpoints that subscribe to it. Sweeps by several instances at
 * once are harmless: the decider decides nothing for an endpoint already off, and a repeated
 * notice carries the same event id.
 */
export class AutoDisable extends Context.Service<AutoDisable, {
  /** Endpoints due to be disabled now (a read; for the sweep and tests). */
  failing(): Effect.Effect<ReadonlyArray<FailingEndpoint>, DbUnavailable>
  /** One sweep: disables every due endpoint and publishes its notice; returns how many it disabled. */
  sweep(): Effect.Effect<number, DbUnavailable | KafkaUnavailable>
}>()("@orbit/registration/AutoDisable") {
  static readonly layer = Layer.effect(
    AutoDisable,
    Effect.gen(function*() {
      const { sql } = yield* Db
      const commands = yield* EndpointCommands
      const producer = yield* Producer
      const { topicPrefix } = yield* KafkaClient
      const sourceTopic = topicsFor(topicPrefix).sourceEvents.name
      const afterSeconds = yield* AutoDisableAfter

      const failing = () => query(() => failingEndpoints(sql, afterSeconds))

      const disableOne = Effect.fn("AutoDisable.disableOne")(function*(endpoint: FailingEndpoint) {
        const disabled = yield* commands.disable({ tenantId: endpoint.tenant_id, mode: endpoint.mode }, endpoint.id, endpoint.last_status).pipe(
          // Deleted since the read (UrlRefused cannot happen: disabling vets no URL).
          Effect.catchTag(["EndpointNotFound", "UrlRefused"], () => Effect.succeed(undefined))
        )
        if (disabled === undefined) return false
        const notice: DomainEvent = {
          id: disabledNoticeId(endpoint.id, endpoint.since),
          type: "webhook.endpoint.disabled",
          tenant_id: endpoint.tenant_id,
          mode: endpoint.mode,
          created_at: disabled.disabled_at,
          data: { endpoint_id: endpoint.id, reason: disabled.reason, disabled_at: disabled.disabled_at, last_status: endpoint.last_status }
        }
        // After the endpoint event: the fan-out's index then already has it off, so the notice never
        // goes to the endpoint it is about. Keyed by tenant, as API.md §8 asks of every producer.
        yield* producer.send(sourceTopic, [{ key: endpoint.tenant_id, value: encodeDomainEvent(notice) }])
        yield* Effect.logInfo("endpoint disabled: every attempt failed for the auto-disable period", {
          endpoint_id: endpoint.id,
          failures: endpoint.failures,
          last_status: endpoint.last_status
        })
        return true
      })

      const sweep = Effect.fn("AutoDisable.sweep")(function*() {
        let n = 0
        for (const endpoint of yield* failing()) if (yield* disableOne(endpoint)) n++
        return n
      })

      const interval = Duration.seconds(sweepIntervalSeconds(afterSeconds))
      const loop = sweep().pipe(
        Effect.catchCause((cause) => Effect.logWarning("auto-disable sweep failed; will try again", { cause: String(Cause.squash(cause)) }))
      )
      yield* Effect.forkScoped(Effect.repeat(loop, Schedule.spaced(interval)))
      return AutoDisable.of({ failing, sweep })
    })
  )
}
