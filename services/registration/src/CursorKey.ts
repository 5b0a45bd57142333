import { createHash, createSecretKey, type KeyObject } from "node:crypto"
import { KeyRingError, parseKeyRing } from "@orbit/crypto"
import { Config, Context, Effect, Layer, Option, Redacted } from "effect"

/** The shortest ORBIT_CURSOR_KEY accepted: a cursor key is as hard to guess as its setting. */
export const MIN_CURSOR_KEY_LENGTH = 32

/**
 * The cursor key from the settings (pure): from ORBIT_CURSOR_KEY when it is set, else from the
 * **last** key of the ring ORBIT_SECRET_KEYS. New keys are put first in the ring, so the last one
 * is the oldest still there: adding a key (a rotation) leaves it, and the cursors in circulation,
 * unchanged. Retiring that oldest key changes it once (cursors issued before are refused as
 * invalid and a client starts its listing again); ORBIT_CURSOR_KEY avoids even that.
 * Never the whole ring string: any change to the ring would invalidate every cursor.
 */
export const cursorKeyFrom = (settings: { readonly cursorKey: string | undefined; readonly keyRing: string }): KeyObject => {
  const hash = createHash("sha256")
  if (settings.cursorKey !== undefined) {
    if (settings.cursorKey.length < MIN_CURSOR_KEY_LENGTH) {
      throw new KeyRingError({ message: `ORBIT_CURSOR_KEY must be at least ${MIN_CURSOR_KEY_LENGTH} characters` })
    }
    hash.update("orbit-cursor-v2\u0000setting\u0000").update(settings.cursorKey)
  } else {
    const ring = parseKeyRing(settings.keyRing)
    const [id, key] = [...ring.keys].at(-1)!
    hash.update("orbit-cursor-v2\u0000ring\u0000").update(id).update("\u0000").update(key.export())
  }
  // A KeyObject once, rather than a raw key that every HMAC would import again.
  return createSecretKey(hash.digest())
}

/** The HMAC key that makes cursors tamper-evident (see `cursorKeyFrom` for where it comes from). */
export class CursorKey extends Context.Service<CursorKey, KeyObject>()("@orbit/registration/CursorKey") {
  static readonly layer = Layer.effect(
    CursorKey,
    Effect.gen(function*() {
      const cursorKey = yield* Config.option(Config.Redacted("ORBIT_CURSOR_KEY"))
      const keyRing = yield* Config.Redacted("ORBIT_SECRET_KEYS")
      return yield* Effect.try({
        try: () =>
          cursorKeyFrom({
            cursorKey: Option.getOrUndefined(Option.map(cursorKey, Redacted.value)),
            keyRing: Redacted.value(keyRing)
          }),
        catch: (e) =>
          e instanceof KeyRingError && e.message.startsWith("ORBIT_CURSOR_KEY")
            ? e
            : new KeyRingError({ message: "ORBIT_SECRET_KEYS is invalid (no cursor key can be derived)" })
      })
    })
  )
}
