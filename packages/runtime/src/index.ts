export * from "./ServiceRuntime.ts"
export * from "./MetricsServer.ts"
