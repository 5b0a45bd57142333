/**
 * The reason a service gives when it cannot start names the error even when its message is empty:
 * Node's failed connects are an AggregateError with no message of its own.
 */
import { Cause, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { describeError, startupMessage } from "../src/ServiceRuntime.ts"

class Unavailable extends Schema.TaggedError<Unavailable>()("Unavailable", { message: Schema.String }) {}

const refused = (address: string) => Object.assign(new Error(`connect ECONNREFUSED ${address}`), { code: "ECONNREFUSED" })

describe("startupMessage", () => {
  it("gives an error's own message when it has one", () => {
    expect(startupMessage(Cause.fail(new Unavailable({ message: "Postgres is down" })))).toBe("Postgres is down")
    expect(startupMessage(Cause.die("plain"))).toBe("plain")
  })

  it("names an AggregateError without a message by its code and the messages inside it", () => {
    // As net.connect fails with autoSelectFamily when every address of a name refuses.
    const aggregate = Object.assign(new AggregateError([refused("::1:5432"), refused("127.0.0.1:5432")], ""), { code: "ECONNREFUSED" })
    expect(startupMessage(Cause.die(aggregate))).toBe(
      "AggregateError ECONNREFUSED: connect ECONNREFUSED ::1:5432; connect ECONNREFUSED 127.0.0.1:5432"
    )
  })

  it("names a tagged error with an empty message by its tag, and its cause", () => {
    expect(startupMessage(Cause.fail(new Unavailable({ message: "" })))).toBe("Unavailable")
    const wrapped = Object.assign(new Error(""), { cause: refused("127.0.0.1:9092") })
    expect(describeError(wrapped)).toBe("Error: connect ECONNREFUSED 127.0.0.1:9092")
  })
})
