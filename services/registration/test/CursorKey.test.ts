import { describe, expect, it } from "@effect/vitest"
import { generateKeyRing } from "@orbit/crypto"
import { ConfigProvider, Effect, Exit, Layer } from "effect"
import { decodeCursor, encodeCursor } from "../src/Cursor.ts"
import { CursorKey } from "../src/CursorKey.ts"

const scope = { tenantId: "t1", mode: "live" }
const position = { createdAt: "2026-11-27T10:00:00.123456Z", id: "wh_abc" }

/** The key the service would build from this environment. */
const keyFrom = (env: Record<string, string>) =>
  Effect.runSyncExit(
    Effect.gen(function*() {
      return yield* CursorKey
    }).pipe(Effect.provide(CursorKey.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env }))))))
  )
const key = (env: Record<string, string>) => {
  const exit = keyFrom(env)
  if (Exit.isFailure(exit)) throw new Error(`no cursor key: ${String(exit.cause)}`)
  return exit.value
}

describe("CursorKey", () => {
  const a = generateKeyRing("a")
  const b = generateKeyRing("b")
  const c = generateKeyRing("c")

  it("a cursor issued before a key is added to the ring still opens after", () => {
    const cursor = encodeCursor(key({ ORBIT_SECRET_KEYS: a }), scope, position)
    expect(decodeCursor(key({ ORBIT_SECRET_KEYS: `${b},${a}` }), scope, cursor)).toEqual(position)
    expect(decodeCursor(key({ ORBIT_SECRET_KEYS: `${c},${b},${a}` }), scope, cursor)).toEqual(position)
  })

  it("with ORBIT_CURSOR_KEY, cursors survive any change of the ring, a key's retirement included", () => {
    const ORBIT_CURSOR_KEY = "a-cursor-key-of-at-least-32-characters"
    const cursor = encodeCursor(key({ ORBIT_SECRET_KEYS: a, ORBIT_CURSOR_KEY }), scope, position)
    expect(decodeCursor(key({ ORBIT_SECRET_KEYS: `${b},${a}`, ORBIT_CURSOR_KEY }), scope, cursor)).toEqual(position)
    expect(decodeCursor(key({ ORBIT_SECRET_KEYS: b, ORBIT_CURSOR_KEY }), scope, cursor)).toEqual(position)
    // Another cursor key is another key.
    expect(decodeCursor(key({ ORBIT_SECRET_KEYS: a, ORBIT_CURSOR_KEY: `${ORBIT_CURSOR_KEY}!` }), scope, cursor)).toBeUndefined()
  })

  it("without ORBIT_CURSOR_KEY, another oldest key is another cursor key", () => {
    const cursor = encodeCursor(key({ ORBIT_SECRET_KEYS: `${b},${a}` }), scope, position)
    expect(decodeCursor(key({ ORBIT_SECRET_KEYS: b }), scope, cursor)).toBeUndefined()
  })

  it("refuses a short ORBIT_CURSOR_KEY at start, naming it and not echoing it", () => {
    const exit = keyFrom({ ORBIT_SECRET_KEYS: a, ORBIT_CURSOR_KEY: "short-cursor-key" })
    expect(Exit.isFailure(exit)).toBe(true)
    expect(String(exit)).toContain("ORBIT_CURSOR_KEY must be at least 32 characters")
    expect(String(exit)).not.toContain("short-cursor-key")
  })
})
