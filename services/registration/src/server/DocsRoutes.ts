import { readFileSync } from "node:fs"
import { Config, Effect, Option } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { HttpApiBuilder, OpenApi } from "effect/http-api"
import { Api } from "../api/Api.ts"

/**
 * Scalar's standalone bundle, from the pinned npm package (no CDN: the page works offline). Its
 * package exports only the ESM entry, so the browser build is found next to it.
 */
const SCALAR_BUNDLE = new URL("./browser/standalone.js", import.meta.resolve("@scalar/api-reference"))
export const SCALAR_PATH = "/api/v1/docs/scalar.js"

/**
 * The document's `servers`: ORBIT_PUBLIC_URL (the address clients reach the API at) when set,
 * otherwise "/", the origin that served the document.
 */
const specFor = (publicUrl: Option.Option<string>) =>
  OpenApi.fromApi(
    Api.annotate(
      OpenApi.Servers,
      Option.match(publicUrl, {
        onNone: () => [{ url: "/", description: "The server that serves this document" }],
        onSome: (url) => [{ url: url.replace(/\/+$/, ""), description: "Orbit Webhooks" }]
      })
    )
  )

// Nothing reaches out: fonts come from the system (Scalar's default fonts load from its CDN),
// and its hosted extras (the developer toolbar with "Deploy API", the "Ask AI" agent) are off.
// "Try it" sends the `apiKey` scheme (X-API-Key) that the document applies to every webhook
// operation.
const scalarConfiguration = {
  url: "/api/v1/openapi.json",
  withDefaultFonts: false,
  showDeveloperTools: "never",
  agent: { disabled: true },
  defaultOpenAllTags: true,
  authentication: { preferredSecurityScheme: "apiKey" }
}

const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Orbit Webhooks API</title></head>
<body>
<noscript>This reference needs JavaScript. The OpenAPI document is at <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</noscript>
<script id="api-reference" data-url="/api/v1/openapi.json" data-configuration="${
  JSON.stringify(scalarConfiguration).replace(/&/g, "&amp;").replace(/"/g, "&quot;")
}"></script>
<script src="${SCALAR_PATH}"></script>
</body></html>`

/** The OpenAPI document (generated from the same declaration that serves the API) and its interactive reference page. */
export const DocsRoutes = HttpApiBuilder.group(Api, "docs", Effect.fn(function*(handlers) {
  const spec = HttpServerResponse.jsonUnsafe(specFor(yield* Config.option(Config.NonEmptyString("ORBIT_PUBLIC_URL"))))
  const page = HttpServerResponse.html(html)
  return handlers
    .handle("openapi", () => Effect.succeed(spec))
    .handle("reference", () => Effect.succeed(page))
}))

/** The renderer's script: an asset of the reference page, not an operation of the API. */
export const ScalarAssetRoute = HttpRouter.use(Effect.fn(function*(router) {
  const bundle = readFileSync(SCALAR_BUNDLE)
  yield* router.add(
    "GET",
    SCALAR_PATH,
    Effect.succeed(HttpServerResponse.uint8Array(bundle, {
      contentType: "text/javascript; charset=utf-8",
      headers: { "cache-control": "public, max-age=3600" }
    }))
  )
}))
