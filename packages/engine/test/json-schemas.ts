// JSON Schemas of OpenAI's strict-mode subset, for the structured-output tests:
// nested objects, enums, arrays of objects, $defs/$ref (recursion included),
// anyOf, nullable types, const, minItems/maxItems.
const str = { type: "string" };
const int = { type: "integer" };
const num = { type: "number" };
const bool = { type: "boolean" };

function obj(properties: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: "object", properties, required: Object.keys(properties), additionalProperties: false, ...extra };
}

export const STRICT_SCHEMAS: Array<{ name: string; schema: Record<string, unknown> }> = [
  { name: "person", schema: obj({ name: str, age: int }) },
  { name: "flags", schema: obj({ a: bool, b: bool, c: { type: "null" } }) },
  { name: "sentiment", schema: obj({ label: { type: "string", enum: ["positive", "negative", "neutral"] }, confidence: num }) },
  { name: "address", schema: obj({ street: str, city: str, geo: obj({ lat: num, lon: num }) }) },
  { name: "tags", schema: obj({ tags: { type: "array", items: str, maxItems: 4 } }) },
  { name: "line_items", schema: obj({ items: { type: "array", items: obj({ sku: str, qty: int }), maxItems: 3 } }) },
  { name: "nullable", schema: obj({ note: { type: ["string", "null"] }, count: { type: ["integer", "null"] } }) },
  { name: "any_of", schema: obj({ value: { anyOf: [str, int, obj({ x: int })] } }) },
  {
    name: "ref_defs",
    schema: obj(
      { home: { $ref: "#/$defs/place" }, work: { $ref: "#/$defs/place" } },
      { $defs: { place: obj({ city: str, zip: str }) } },
    ),
  },
  {
    name: "tree",
    schema: {
      $defs: { node: obj({ v: int, kids: { type: "array", items: { $ref: "#/$defs/node" }, maxItems: 2 } }) },
      ...obj({ root: { $ref: "#/$defs/node" } }),
    },
  },
  { name: "enum_mixed", schema: obj({ level: { enum: [1, 2, 3, "max", null, true] } }) },
  { name: "const", schema: obj({ version: { const: "v1" }, kind: { const: 7 } }) },
  { name: "min_items", schema: obj({ xs: { type: "array", items: int, minItems: 2, maxItems: 3 } }) },
  { name: "deep", schema: obj({ a: obj({ b: obj({ c: obj({ d: str }) }) }) }) },
  { name: "classification", schema: obj({ category: { enum: ["bug", "feature", "question", "docs"] }, priority: { enum: ["p0", "p1", "p2"] }, duplicate: bool }) },
  {
    name: "contacts",
    schema: obj(
      { people: { type: "array", items: { $ref: "#/$defs/p" }, maxItems: 2 } },
      { $defs: { p: obj({ name: str, email: { type: ["string", "null"] }, role: { enum: ["admin", "user"] } }) } },
    ),
  },
  { name: "numbers", schema: obj({ i: int, f: num, neg: num }) },
  { name: "matrix", schema: obj({ rows: { type: "array", items: { type: "array", items: num, maxItems: 2 }, maxItems: 2 } }) },
  { name: "union_objects", schema: obj({ shape: { anyOf: [obj({ kind: { const: "circle" }, r: num }), obj({ kind: { const: "rect" }, w: num, h: num })] } }) },
  { name: "ten_fields", schema: obj(Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`field_${i}`, i % 3 === 0 ? int : i % 3 === 1 ? str : bool]))) },
];
