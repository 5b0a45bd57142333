export * from "./Orbit.ts"
export type { components, operations, paths } from "./generated/openapi.ts"
