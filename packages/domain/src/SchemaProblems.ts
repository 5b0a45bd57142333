import { SchemaIssue } from "effect"

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

/** One problem of a failed decode: the keys from the input's root to the value, and Effect's message. */
export interface SchemaProblem {
  readonly path: ReadonlyArray<PropertyKey>
  /** `"Missing key"`, `"Expected no excess property"`, or `"Expected <what the schema expects>"`. */
  readonly message: string
}

/**
 * A Schema issue as one entry per problem, for callers that word their own messages: the API's
 * `details` (registration) and the replay script's argument errors (dispatcher).
 */
export const schemaProblems = (issue: SchemaIssue.Issue): Array<SchemaProblem> =>
  formatter(issue).issues.map(({ path, message }) => ({
    path: (path ?? []).map((p) => (typeof p === "object" && p !== null && "key" in p ? p.key : p)) as Array<PropertyKey>,
    message
  }))
