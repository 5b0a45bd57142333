import { Schema } from "effect"

/**
 * An ISO 8601 instant with seconds and a time zone (`2026-11-27T10:00:00.123Z`,
 * `…T11:00:00+01:00`): the form every instant on every topic takes (API.md §8 `created_at`).
 * The shape only; callers that need a real date also check `Date.parse`.
 */
export const ISO_INSTANT_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/

/** A UTC calendar date (`2026-11-27`), the shape only. */
export const ISO_DATE_PATTERN = /^\d{4}-\d{2}-\d{2}$/

export const IsoInstant = Schema.String.check(Schema.isPattern(ISO_INSTANT_PATTERN))
