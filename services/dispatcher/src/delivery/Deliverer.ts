import { SecretBox, signDelivery, signingKey, type SigningKey } from "@orbit/crypto"
import { deliverableHeaders, type DeliveryTask, type Endpoint, type AttemptErrorClass } from "@orbit/domain"
import { ExtraCaConfig, isSsrfBlocked, makePinnedDispatcher, NetGuardPolicy, Resolver, type SsrfRefusal } from "@orbit/net-guard"
import { Context, Effect, Exit, Layer } from "effect"
import type { Dispatcher } from "undici"
import { type AttemptResult, parseRetryAfter } from "../retry/RetrySchedule.ts"

/** At most this much of a response body is read; then the connection is closed. */
export const MAX_RESPONSE_BYTES = 64 * 1024
export const USER_AGENT = "Devotel-Webhooks/1.0"

/**
 * The headers of one attempt (API.md §7), signature included, after the endpoint's custom headers
 * (`custom`): a custom header never replaces one of ours (the API refuses their names anyway).
 */
export const deliveryHeaders = (input: {
  readonly task: DeliveryTask
  readonly secrets: ReadonlyArray<string | SigningKey>
  readonly timestamp: number
  readonly custom?: Readonly<Record<string, string>> | undefined
}): Record<string, string> => ({
  ...deliverableHeaders(input.custom),
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
 * `timeoutMs`; redirects are not followed (undici's `dispatch` never does), so a 3xx fails; at most
 * 64 KiB of the response is read, then the connection is closed. Never throws.
 *
 * This uses undici's low-level `dispatch` with a handler rather than `request`: no response
 * stream, no AbortSignal listeners, no async-hooks resource per attempt (a measurable share of
 * the dispatcher's CPU at thousands of attempts per second).
 */
export const postWebhook = (input: {
  readonly dispatcher: Dispatcher
  readonly url: string
  readonly body: string
  readonly headers: Record<string, string>
  readonly timeoutMs: number
  readonly now?: () => number
}): Promise<AttemptResult> =>
  new Promise<AttemptResult>((resolve) => {
    const now = input.now ?? Date.now
    const started = performance.now()
    let controller: Dispatcher.DispatchController | null = null
    let status: number | null = null
    let retryAfterHeader: string | undefined
    let read = 0
    let settled = false
    let timedOut = false
    const finish = (result: AttemptResult) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve(result)
    }
    const failed = (error: unknown) => {
      const { errorClass, message } = classifyFailure(error)
      finish({ ok: false, httpStatus: null, durationMs: performance.now() - started, errorClass, errorMessage: message, retryAfterSeconds: undefined })
    }
    /** The outcome once the status line is in: the status decides. */
    const byStatus = (code: number): AttemptResult => {
      const durationMs = performance.now() - started
      if (code >= 200 && code < 300) {
        return { ok: true, httpStatus: code, durationMs, errorClass: null, errorMessage: null, retryAfterSeconds: undefined }
      }
      const redirect = code >= 300 && code < 400
      return {
        ok: false,
        httpStatus: code,
        durationMs,
        errorClass: redirect ? "redirect" : "http_status",
        errorMessage: redirect ? `redirect (${code}) not followed` : `HTTP ${code}`,
        retryAfterSeconds: code === 429 || code === 503 ? parseRetryAfter(retryAfterHeader, now()) : undefined
      }
    }
    const timer = setTimeout(() => {
      timedOut = true
      finish({
        ok: false,
        httpStatus: status,
        durationMs: performance.now() - started,
        errorClass: "timeout",
        errorMessage: `no complete response within ${input.timeoutMs} ms`,
        retryAfterSeconds: undefined
      })
      controller?.abort(new Error("attempt timed out"))
    }, input.timeoutMs)

    let origin: string
    let path: string
    try {
      const url = new URL(input.url)
      origin = url.origin
      path = `${url.pathname}${url.search}`
    } catch (error) {
      failed(error)
      return
    }
    try {
      input.dispatcher.dispatch({ origin, path, method: "POST", body: input.body, headers: input.headers }, {
        onRequestStart: (c) => {
          controller = c
          if (timedOut) c.abort(new Error("attempt timed out"))
        },
        onResponseStart: (_c, statusCode, headers) => {
          status = statusCode
          const h = headers["retry-after"]
          retryAfterHeader = Array.isArray(h) ? h[0] : h
        },
        onResponseData: (c, chunk) => {
          read += chunk.length
          if (read > MAX_RESPONSE_BYTES && status !== null) {
            // Enough read: the status decides; the connection is closed rather than drained.
            finish(byStatus(status))
            c.abort(new Error("response body over the 64 KiB read limit"))
          }
        },
        onResponseEnd: () => {
          if (status !== null) finish(byStatus(status))
        },
        onResponseError: (_c, error) => {
          // A body cut short after a complete status line: the status still decides.
          if (status !== null) finish(byStatus(status))
          else failed(error)
        }
      })
    } catch (error) {
      failed(error)
    }
  })

/** Prepared signing keys per secret box, so a hot endpoint is not decrypted and keyed per attempt. */
const MAX_CACHED_KEYS = 10_000

const signingFailure: AttemptResult = {
  ok: false,
  httpStatus: null,
  durationMs: 0,
  errorClass: "signing",
  errorMessage: "the endpoint secret cannot be decrypted with the configured key ring",
  retryAfterSeconds: undefined
}

/**
 * Makes one signed delivery attempt. Signs with the endpoint's current secret, and its previous
 * secret while the rotation grace window lasts; sends through the SSRF-pinned connector.
 */
export class Deliverer extends Context.Service<Deliverer, {
  attempt(task: DeliveryTask, endpoint: Endpoint): Effect.Effect<AttemptResult>
  /** The same as a promise that never rejects (the per-delivery hot path runs outside Effect). */
  attemptNow(task: DeliveryTask, endpoint: Endpoint): Promise<AttemptResult>
}>()("@orbit/dispatcher/Deliverer") {
  /** Needs SecretBox, NetGuardPolicy and Resolver; reads ORBIT_EXTRA_CA_FILE. */
  static readonly layer = Layer.effect(
    Deliverer,
    Effect.gen(function*() {
      const box = yield* SecretBox
      const policy = yield* NetGuardPolicy
      const { resolve } = yield* Resolver
      const ca = yield* ExtraCaConfig
      const run = Effect.runForkWith(yield* Effect.context<never>())
      // The attempt log says only that the host is not allowed; where it resolved goes here.
      const onRefused = (refusal: SsrfRefusal) =>
        void run(Effect.logWarning("delivery refused: the endpoint's host resolves to a forbidden address", { ...refusal }))
      const dispatcher = yield* Effect.acquireRelease(
        Effect.sync(() => makePinnedDispatcher({ policy, resolver: resolve, onRefused, ...(ca === undefined ? {} : { ca }) })),
        (agent) => Effect.promise(() => agent.destroy().catch(() => undefined))
      )

      // Decrypted secrets live only as HMAC KeyObjects in this process's memory, like the key ring.
      // A box opens only in the place it was sealed for (endpoint, tenant, mode, slot), so the cache
      // is keyed by that place as well as the box: a box copied onto another endpoint never reaches
      // a key opened for its own.
      const keys = new Map<string, SigningKey>()
      const keyOf = (endpoint: Endpoint, slot: "current" | "previous", secretBox: string): SigningKey | undefined => {
        const place = { tenant_id: endpoint.tenant_id, mode: endpoint.mode, endpoint_id: endpoint.id, slot }
        const cacheKey = JSON.stringify([place.tenant_id, place.mode, place.endpoint_id, slot, secretBox])
        const cached = keys.get(cacheKey)
        if (cached !== undefined) return cached
        const opened = Effect.runSyncExit(box.decrypt(secretBox, place))
        if (Exit.isFailure(opened)) return undefined
        if (keys.size >= MAX_CACHED_KEYS) keys.clear()
        const key = signingKey(opened.value)
        keys.set(cacheKey, key)
        return key
      }

      const secretsOf = (endpoint: Endpoint, now: number): ReadonlyArray<SigningKey> | undefined => {
        const current = keyOf(endpoint, "current", endpoint.secret_box)
        if (current === undefined) return undefined
        const inGrace = endpoint.previous_secret_box !== null && endpoint.previous_expires_at !== null &&
          Date.parse(endpoint.previous_expires_at) > now
        if (!inGrace) return [current]
        const previous = keyOf(endpoint, "previous", endpoint.previous_secret_box!)
        return previous === undefined ? undefined : [current, previous]
      }

      const attemptNow = (task: DeliveryTask, endpoint: Endpoint): Promise<AttemptResult> => {
        const now = Date.now()
        const secrets = secretsOf(endpoint, now)
        if (secrets === undefined) return Promise.resolve(signingFailure)
        const headers = deliveryHeaders({ task, secrets, timestamp: Math.floor(now / 1000), custom: endpoint.headers })
        return postWebhook({ dispatcher, url: endpoint.url, body: task.body, headers, timeoutMs: endpoint.timeout_seconds * 1000 })
      }

      return Deliverer.of({
        attempt: Effect.fn("Deliverer.attempt")((task: DeliveryTask, endpoint: Endpoint) =>
          Effect.promise(() => attemptNow(task, endpoint))
        ),
        attemptNow
      })
    })
  )
}
