import { Schema } from "effect"

/** Live and test data never mix: the mode is part of the tenant scope (API.md §1). */
export const Mode = Schema.Literals(["live", "test"])
export type Mode = typeof Mode.Type

export const TenantId = Schema.String.check(
  Schema.isMinLength(1),
  Schema.isMaxLength(128),
  Schema.isPattern(/^[A-Za-z0-9_.:-]+$/)
)
export type TenantId = typeof TenantId.Type
