import { describe, expect, it } from "vitest"
import { EVENT_CATALOG, EVENT_TYPE_EXAMPLES, eventDataProblems, WEBHOOK_EVENT_TYPES } from "../src/index.ts"

describe("EventCatalog", () => {
  it("describes every catalog type once, in catalog order", () => {
    expect(EVENT_CATALOG.map((e) => e.type)).toEqual([...WEBHOOK_EVENT_TYPES])
    for (const e of EVENT_CATALOG) {
      expect(e.type.startsWith(`${e.group}.`)).toBe(true)
      expect(e.description.length).toBeGreaterThan(0)
      expect(e.schema).toMatchObject({ type: "object" })
    }
  })

  it.each(WEBHOOK_EVENT_TYPES.map((t) => [t]))("the example of %s validates against its schema", (type) => {
    expect(eventDataProblems(type, EVENT_TYPE_EXAMPLES[type])).toEqual([])
  })

  it("reports every problem of non-conforming data with its path", () => {
    const problems = eventDataProblems("call.completed", { call_id: "call_1", from: "+1", to: "+2", direction: "sideways", status: "completed" })
    expect(problems).toEqual([
      { path: ["direction"], message: expect.stringContaining("inbound") },
      { path: ["duration_seconds"], message: "Missing key" }
    ])
  })

  it("allows keys the schema does not list", () => {
    expect(eventDataProblems("contact.deleted", { contact_id: "ct_1", reason: "gdpr" })).toEqual([])
  })
})
