export * from "./ApiKeys.ts"
export * from "./SecretBox.ts"
export * from "./Secrets.ts"
export * from "./Signer.ts"
