export * from "./ServiceRuntime.ts"
export * from "./Tracing.ts"
export * from "./MetricsServer.ts"
