import { SecretBox, type SecretContext, type SecretDecryptError } from "@orbit/crypto"
import type { Endpoint, ResealEndpointSecrets } from "@orbit/domain"
import { Effect } from "effect"

/** Where an endpoint's box of `slot` belongs: it opens only there. */
export const placeOf = (endpoint: Pick<Endpoint, "id" | "tenant_id" | "mode">, slot: SecretContext["slot"]): SecretContext => ({
  tenant_id: endpoint.tenant_id,
  mode: endpoint.mode,
  endpoint_id: endpoint.id,
  slot
})

/**
 * The reseal of an endpoint whose boxes are not all in today's form (the current box version,
 * under the ring's first key), or undefined when there is nothing to do. A box already current is
 * kept as it is; a previous secret whose grace window has ended is dropped rather than resealed
 * (nothing signs with it again, and its key may already be gone). Fails when a box that must be
 * resealed does not open with the ring.
 */
export const resealOf = Effect.fnUntraced(function*(
  endpoint: Endpoint,
  now: number
): Effect.fn.Return<ResealEndpointSecrets | undefined, SecretDecryptError, SecretBox> {
  const box = yield* SecretBox
  const previousLive = endpoint.previous_secret_box !== null &&
    (endpoint.previous_expires_at === null || Date.parse(endpoint.previous_expires_at) > now)
  // An expired previous box never opens again, so it alone is no reason to reseal.
  const keepsPrevious = !previousLive || box.isCurrent(endpoint.previous_secret_box!)
  if (box.isCurrent(endpoint.secret_box) && keepsPrevious) return undefined

  const reseal = (sealed: string, slot: SecretContext["slot"]) =>
    box.isCurrent(sealed)
      ? Effect.succeed(sealed)
      : box.decrypt(sealed, placeOf(endpoint, slot)).pipe(Effect.flatMap((plain) => box.encrypt(plain, placeOf(endpoint, slot))))

  return {
    _tag: "ResealEndpointSecrets",
    tenant_id: endpoint.tenant_id,
    mode: endpoint.mode,
    endpoint_id: endpoint.id,
    replaces_secret_box: endpoint.secret_box,
    secret_box: yield* reseal(endpoint.secret_box, "current"),
    previous_secret_box: previousLive ? yield* reseal(endpoint.previous_secret_box!, "previous") : null
  }
})
