import { SecretBox } from "@orbit/crypto"
import { signDelivery } from "@orbit/crypto"
import type { DeliveryTask, Endpoint, AttemptErrorClass } from "@orbit/domain"
import { ExtraCaConfig, isSsrfBlocked, makePinnedDispatcher, NetGuardPolicy, Resolver } from "@orbit/net-guard"
import { Context, Effect, Layer } from "effect"
import { type Dispatcher, request } from "undici"
import { type AttemptResult, parseRetryAfter } from "./RetrySchedule.ts"

/** At most this much of a response body is read; then the connection is closed. */
export const MAX_RESPONSE_BYTES = 64 * 1024
export const USER_AGENT = "Devotel-Webhooks/1.0"

/** The headers of one attempt (API.md §7), signature included. */
export const deliveryHeaders = (input: {
  readonly task: DeliveryTask
  readonly secrets: ReadonlyArray<string>
  readonly timestamp: number
}): Record<string, string> => ({
  "content-type": "application/json; charset=utf-8",
  "user-agent": USER_AGENT,
  "x-devotel-event-id": input.task.source_event_id,
  "x-devotel-event-type": input.task.source_event_type,
  "x-devotel-delivery-id": input.task.delivery_id,
  ...signDelivery({
    secrets: input.secrets,
    eventId: input.task.source_event_id,
    timestamp: input.timestamp,
    body: input.task.body
  })
})

const TLS_CODES = /^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|ERR_OSSL|HOSTNAME_MISMATCH)/

/** Maps a failed request to an error class; the message never includes the URL's path or query. */
export const classifyFailure = (error: unknown): { readonly errorClass: AttemptErrorClass; readonly message: string } => {
  const e = error as { code?: unknown; message?: unknown; cause?: unknown }
  if (isSsrfBlocked(error)) return { errorClass: "ssrf_blocked", message: String(e.message) }
  const code = typeof e.code === "string" ? e.code : ""
  const message = typeof e.message === "string" ? e.message.slice(0, 300) : String(error).slice(0, 300)
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return { errorClass: "dns", message }
  if (TLS_CODES.test(code) || /certificate|TLS|SSL/i.test(message)) return { errorClass: "tls", message }
  if (code === "ETIMEDOUT" || code === "UND_ERR_CONNECT_TIMEOUT") return { errorClass: "timeout", message }
  if (e.cause !== undefined && e.cause !== error) {
    const inner = classifyFailure(e.cause)
    if (inner.errorClass !== "connection") return inner
  }
  return { errorClass: "connection", message: code === "" ? message : `${code}: ${message}` }
}

/**
 * One HTTP attempt through `dispatcher`. The whole attempt (connect, headers, body) is aborted at
 * `timeoutMs`; redirects are not followed (undici's `request` never does), so a 3xx fails; at most
 * 64 KiB of the response is read. Never throws.
 */
export const postWebhook = async (input: {
  readonly dispatcher: Dispatcher
  readonly url: string
  readonly body: string
  readonly headers: Record<string, string>
  readonly timeoutMs: number
  readonly now?: () => number
}): Promise<AttemptResult> => {
  const now = input.now ?? Date.now
  const started = performance.now()
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), input.timeoutMs)
  const elapsed = () => performance.now() - started
  const timedOut = (status: number | null): AttemptResult => ({
    ok: false,
    httpStatus: status,
    durationMs: elapsed(),
    errorClass: "timeout",
    errorMessage: `no complete response within ${input.timeoutMs} ms`,
    retryAfterSeconds: undefined
  })
  try {
    let response: Dispatcher.ResponseData
    try {
      response = await request(input.url, {
        method: "POST",
        body: input.body,
        headers: input.headers,
        dispatcher: input.dispatcher,
        signal: controller.signal
      })
    } catch (error) {
      if (controller.signal.aborted) return timedOut(null)
      const { errorClass, message } = classifyFailure(error)
      return { ok: false, httpStatus: null, durationMs: elapsed(), errorClass, errorMessage: message, retryAfterSeconds: undefined }
    }
    const status = response.statusCode
    // Read a bounded prefix so the connection can be reused; a longer body closes it.
    try {
      let read = 0
      for await (const chunk of response.body) {
        read += (chunk as Buffer).length
        if (read > MAX_RESPONSE_BYTES) {
          response.body.destroy()
          break
        }
      }
    } catch {
      if (controller.signal.aborted) return timedOut(status)
      // A body cut short after a complete status line: the status still decides.
    }
    const durationMs = elapsed()
    if (status >= 200 && status < 300) {
      return { ok: true, httpStatus: status, durationMs, errorClass: null, errorMessage: null, retryAfterSeconds: undefined }
    }
    const header = response.headers["retry-after"]
    const retryAfter = status === 429 || status === 503
      ? parseRetryAfter(Array.isArray(header) ? header[0] : header, now())
      : undefined
    return {
      ok: false,
      httpStatus: status,
      durationMs,
      errorClass: status >= 300 && status < 400 ? "redirect" : "http_status",
      errorMessage: status >= 300 && status < 400 ? `redirect (${status}) not followed` : `HTTP ${status}`,
      retryAfterSeconds: retryAfter
    }
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Makes one signed delivery attempt. Signs with the endpoint's current secret, and its previous
 * secret while the rotation grace window lasts; sends through the SSRF-pinned connector.
 */
export class Deliverer extends Context.Service<Deliverer, {
  attempt(task: DeliveryTask, endpoint: Endpoint): Effect.Effect<AttemptResult>
}>()("@orbit/dispatcher/Deliverer") {
  /** Needs SecretBox, NetGuardPolicy and Resolver; reads ORBIT_EXTRA_CA_FILE. */
  static readonly layer = Layer.effect(
    Deliverer,
    Effect.gen(function*() {
      const box = yield* SecretBox
      const policy = yield* NetGuardPolicy
      const { resolve } = yield* Resolver
      const ca = yield* ExtraCaConfig
      const dispatcher = yield* Effect.acquireRelease(
        Effect.sync(() => makePinnedDispatcher({ policy, resolver: resolve, ...(ca === undefined ? {} : { ca }) })),
        (agent) => Effect.promise(() => agent.destroy().catch(() => undefined))
      )

      const secretsOf = Effect.fn("Deliverer.secretsOf")(function*(endpoint: Endpoint, now: number) {
        const current = yield* box.decrypt(endpoint.secret_box)
        const inGrace = endpoint.previous_secret_box !== null && endpoint.previous_expires_at !== null &&
          Date.parse(endpoint.previous_expires_at) > now
        if (!inGrace) return [current]
        return [current, yield* box.decrypt(endpoint.previous_secret_box!)]
      })

      const attempt = Effect.fn("Deliverer.attempt")(function*(task: DeliveryTask, endpoint: Endpoint) {
        const now = Date.now()
        const secrets = yield* secretsOf(endpoint, now).pipe(Effect.option)
        if (secrets._tag === "None") {
          return {
            ok: false,
            httpStatus: null,
            durationMs: 0,
            errorClass: "signing" as const,
            errorMessage: "the endpoint secret cannot be decrypted with the configured key ring",
            retryAfterSeconds: undefined
          }
        }
        const headers = deliveryHeaders({ task, secrets: secrets.value, timestamp: Math.floor(now / 1000) })
        return yield* Effect.promise(() =>
          postWebhook({ dispatcher, url: endpoint.url, body: task.body, headers, timeoutMs: endpoint.timeout_seconds * 1000 })
        )
      })

      return Deliverer.of({ attempt })
    })
  )
}
