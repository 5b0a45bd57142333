import { Effect } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { OpenApi } from "effect/http-api"
import { Api } from "../api/Api.ts"

const spec = OpenApi.fromApi(Api)

const html = `<!doctype html>
<html><head><meta charset="utf-8"><title>Orbit Webhooks API</title></head>
<body><script id="api-reference" type="application/json">${JSON.stringify(spec).replace(/</g, "\\u003c")}</script>
<div id="app"></div>
<noscript>See /api/v1/openapi.json</noscript>
</body></html>`

/** The OpenAPI document (generated from the same schemas that validate requests) and a reference page. */
export const DocsRoutes = HttpRouter.use(Effect.fn(function*(router) {
  yield* router.add("GET", "/api/v1/openapi.json", Effect.succeed(HttpServerResponse.jsonUnsafe(spec)))
  yield* router.add("GET", "/api/v1/docs", Effect.succeed(HttpServerResponse.html(html)))
}))
