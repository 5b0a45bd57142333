export * from "./Keys.ts"
