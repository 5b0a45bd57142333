export * from "./ServiceRuntime.ts"
