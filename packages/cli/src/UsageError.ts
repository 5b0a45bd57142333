import { Schema } from "effect"

/** A bad invocation found after parsing (an unknown key id, an event type outside the catalog): exit 2. */
export class UsageError extends Schema.TaggedError<UsageError>()("UsageError", {
  message: Schema.String
}) {}
