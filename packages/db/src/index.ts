export * from "./Db.ts"
export * from "./Keyset.ts"
