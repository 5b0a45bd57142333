import { describe, expect, it } from "vitest"
import { methodLabel, routeLabel } from "../src/RegistrationMetrics.ts"

describe("request labels", () => {
  it("name the route template the router matched, with parameters as in the OpenAPI document, never the raw path", () => {
    expect(routeLabel("/api/v1/webhooks/:id")).toBe("/api/v1/webhooks/{id}")
    expect(routeLabel("/api/v1/webhooks/:id/deliveries")).toBe("/api/v1/webhooks/{id}/deliveries")
    expect(routeLabel("/api/v1/webhooks/:id/deliveries/:delivery_id/retry")).toBe("/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry")
    expect(routeLabel("/healthz")).toBe("/healthz")
  })

  it("call the catch-all 404 route and no route at all `unmatched`", () => {
    expect(routeLabel("/*")).toBe("unmatched")
    expect(routeLabel("*")).toBe("unmatched")
    expect(routeLabel(undefined)).toBe("unmatched")
  })

  it("keep methods to the HTTP API's set, anything else `other`", () => {
    for (const m of ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]) expect(methodLabel(m)).toBe(m)
    expect(methodLabel("PROPFIND")).toBe("other")
    expect(methodLabel("get")).toBe("other")
  })
})
