export * from "./ServiceRuntime.ts"
export * from "./Tracing.ts"
