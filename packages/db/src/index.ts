export * from "./Db.ts"
