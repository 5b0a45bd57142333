import { createHash, createSecretKey, type KeyObject } from "node:crypto"
import { Config, Context, Effect, Layer, Redacted } from "effect"

/**
 * The HMAC key that makes cursors tamper-evident. Derived from the secret key ring so there is
 * no extra secret to configure; rotating the ring's keys invalidates outstanding cursors.
 */
export class CursorKey extends Context.Service<CursorKey, KeyObject>()("@orbit/registration/CursorKey") {
  static readonly layer = Layer.effect(
    CursorKey,
    Effect.map(Config.Redacted("ORBIT_SECRET_KEYS"), (ring) =>
      // A KeyObject once, rather than a raw key that every HMAC would import again.
      createSecretKey(createHash("sha256").update("orbit-cursor-v1\u0000").update(Redacted.value(ring)).digest())
    )
  )
}
