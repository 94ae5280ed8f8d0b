// response_format of a request line: text, json_object, or json_schema with a
// schema of OpenAI's strict-mode subset, checked here so that a schema the engine
// cannot decode under is a line-numbered error at ingest, naming the keyword.
// The engine's grammar compiler (packages/engine/src/grammar/json_grammar.*)
// accepts exactly this subset:
//   type (a name or a list of them), properties, required, additionalProperties,
//   items, minItems, maxItems, enum, const, anyOf, $ref (local: "#", "#/$defs/.."),
//   $defs / definitions, minimum / maximum on numbers where they do not cut into
//   what the grammar writes (minimum 0 or <= -1e15, maximum >= 1e15: numbers of at
//   most 15 integer digits), and the annotations title, description, default,
//   examples, $schema, $id, $comment, strict.
import { BatchgenError } from "./errors.js";

export type ResponseFormat =
  | { type: "text" }
  | { type: "json_object" }
  | { type: "json_schema"; name: string; strict: boolean; schema: Record<string, unknown> };

const KEYWORDS = new Set(["type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "enum", "const", "anyOf", "$ref", "minimum", "maximum"]);
const ANNOTATIONS = new Set(["title", "description", "default", "examples", "$schema", "$id", "$comment", "strict", "$defs", "definitions"]);
const TYPES = new Set(["object", "array", "string", "number", "integer", "boolean", "null"]);
const BY_TYPE: Record<string, string[]> = {
  object: ["properties", "required", "additionalProperties"],
  array: ["items", "minItems", "maxItems"],
  number: ["minimum", "maximum"],
  integer: ["minimum", "maximum"],
};
const MAX_DEPTH = 64;

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function invalid(message: string, param: string): BatchgenError {
  return new BatchgenError("invalid_request", message, { param, reason: "invalid_request" });
}

function resolveRef(root: Obj, ref: string): unknown {
  if (ref === "#") return root;
  if (!ref.startsWith("#/")) return undefined;
  let cur: unknown = root;
  for (const raw of ref.slice(2).split("/")) {
    const part = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (!isObject(cur)) return undefined;
    cur = cur[part];
  }
  return cur;
}

/** Throws BatchgenError(invalid_request) naming the keyword and where it sits (a JSON pointer). */
export function checkStrictSchema(schema: unknown, param: string): void {
  if (!isObject(schema)) throw invalid("'json_schema.schema' must be a JSON Schema object.", param);
  const root = schema;
  const fail = (where: string, what: string): never => {
    throw invalid(`json_schema ${where}: ${what}`, param);
  };
  const walk = (s: unknown, where: string, depth: number): void => {
    if (depth > MAX_DEPTH) fail(where, `nesting deeper than ${MAX_DEPTH} levels`);
    if (s === true) return;
    if (s === false) fail(where, "the schema 'false' accepts nothing");
    if (!isObject(s)) fail(where, "a schema must be an object");
    const o = s as Obj;
    for (const key of Object.keys(o)) {
      if (!KEYWORDS.has(key) && !ANNOTATIONS.has(key)) {
        fail(where, `keyword '${key}' is not supported (the strict-mode subset: type, properties, required, additionalProperties, items, minItems, maxItems, enum, const, anyOf, $ref, $defs)`);
      }
    }
    const present = Object.keys(o).filter((k) => KEYWORDS.has(k) && o[k] !== null && o[k] !== undefined);
    for (const defs of ["$defs", "definitions"]) {
      const d = o[defs];
      if (d === undefined) continue;
      if (!isObject(d)) fail(where, `${defs} must be an object of schemas`);
      for (const [k, v] of Object.entries(d as Obj)) walk(v, `${where}/${defs}/${k}`, depth + 1);
    }
    if (o.$ref !== undefined) {
      if (typeof o.$ref !== "string") fail(where, "$ref must be a string");
      const other = present.find((k) => k !== "$ref");
      if (other) fail(where, `keyword '${other}' beside $ref is not supported`);
      if (!(o.$ref as string).startsWith("#")) fail(where, `$ref '${String(o.$ref)}' is not supported: only local references (#/$defs/...)`);
      if (resolveRef(root, o.$ref as string) === undefined) fail(where, `$ref '${String(o.$ref)}' points at nothing`);
      return;
    }
    if (o.anyOf !== undefined) {
      if (!Array.isArray(o.anyOf) || o.anyOf.length === 0) fail(where, "anyOf must be a non-empty array");
      const other = present.find((k) => k !== "anyOf");
      if (other) fail(where, `keyword '${other}' beside anyOf is not supported`);
      (o.anyOf as unknown[]).forEach((a, i) => walk(a, `${where}/anyOf/${i}`, depth + 1));
      return;
    }
    if (o.enum !== undefined && (!Array.isArray(o.enum) || o.enum.length === 0)) fail(where, "enum must be a non-empty array");
    if (o.enum !== undefined || "const" in o) return;
    let types: string[] = [];
    if (o.type === undefined) {
      if (o.properties !== undefined) types = ["object"];
      else if (o.items !== undefined) types = ["array"];
    } else if (typeof o.type === "string") {
      types = [o.type];
    } else if (Array.isArray(o.type) && o.type.length > 0 && o.type.every((t) => typeof t === "string")) {
      types = o.type as string[];
    } else {
      fail(where, "type must be a string or a non-empty array of strings");
    }
    for (const t of types) {
      if (!TYPES.has(t)) fail(where, `type '${t}' is not a JSON Schema type`);
      for (const k of present) {
        if (k !== "type" && !(BY_TYPE[t] ?? []).includes(k)) fail(where, `keyword '${k}' does not apply to type '${t}'`);
      }
    }
    if (types.includes("object")) {
      const props = o.properties;
      if (props !== undefined && !isObject(props)) fail(where, "properties must be an object");
      const ap = o.additionalProperties;
      if (ap !== undefined && typeof ap !== "boolean" && !isObject(ap)) fail(where, "additionalProperties must be a boolean or a schema");
      const names = new Set(Object.keys((props as Obj | undefined) ?? {}));
      if (o.required !== undefined) {
        if (!Array.isArray(o.required) || !o.required.every((r) => typeof r === "string")) fail(where, "required must be an array of property names");
        for (const r of o.required as string[]) if (!names.has(r)) fail(where, `required names '${r}', which is not in properties`);
      }
      for (const [k, v] of Object.entries((props as Obj | undefined) ?? {})) walk(v, `${where}/properties/${k}`, depth + 1);
    }
    if (o.minimum !== undefined && !(o.minimum === 0 || (typeof o.minimum === "number" && o.minimum <= -1e15))) {
      fail(where, `minimum is supported only as 0 or <= -1e15 (got ${JSON.stringify(o.minimum)})`);
    }
    if (o.maximum !== undefined && !(typeof o.maximum === "number" && o.maximum >= 1e15)) {
      fail(where, "maximum is supported only as >= 1e15 (the grammar's numbers have at most 15 integer digits)");
    }
    if (types.includes("array")) {
      for (const k of ["minItems", "maxItems"]) {
        const v = o[k];
        if (v !== undefined && !(Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 100000)) fail(where, `${k} must be an integer in [0, 100000]`);
      }
      if (typeof o.maxItems === "number" && typeof o.minItems === "number" && o.maxItems < o.minItems) fail(where, "maxItems is below minItems");
      if (Array.isArray(o.items)) fail(where, "items as an array (tuple validation) is not supported; use one schema");
      if (o.items !== undefined) walk(o.items, `${where}/items`, depth + 1);
    }
  };
  walk(schema, "#", 0);
}

/** Reads `response_format` (absent or null: text): chat's shape, the schema under `json_schema`. */
export function parseResponseFormat(v: unknown): ResponseFormat {
  const param = "response_format";
  if (v === undefined || v === null) return { type: "text" };
  if (!isObject(v)) throw invalid("'response_format' must be an object.", param);
  if (v.type === "json_schema") {
    const js = v.json_schema;
    if (!isObject(js)) throw invalid("Missing required parameter: 'response_format.json_schema'.", `${param}.json_schema`);
    return jsonSchemaFormat(js, `${param}.json_schema`);
  }
  return plainFormat(v, param);
}

/**
 * Reads a /v1/responses line's `text.format` (absent or null: text): the Responses
 * API's flat shape, name, schema and strict beside `type`.
 */
export function parseTextFormat(v: unknown): ResponseFormat {
  const param = "text.format";
  if (v === undefined || v === null) return { type: "text" };
  if (!isObject(v)) throw invalid("'text.format' must be an object.", param);
  return v.type === "json_schema" ? jsonSchemaFormat(v, param) : plainFormat(v, param);
}

function plainFormat(v: Obj, param: string): ResponseFormat {
  if (v.type === "text") return { type: "text" };
  if (v.type === "json_object") return { type: "json_object" };
  throw invalid(`'${param}.type' must be 'text', 'json_object' or 'json_schema', got ${JSON.stringify(v.type)}.`, `${param}.type`);
}

/** name, strict and schema of a json_schema format, found under `param`. */
function jsonSchemaFormat(js: Obj, param: string): ResponseFormat {
  if (typeof js.name !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(js.name)) {
    throw invalid(`'${param}.name' must be 1-64 letters, digits, '_' or '-'.`, `${param}.name`);
  }
  if (js.strict !== undefined && js.strict !== null && typeof js.strict !== "boolean") {
    throw invalid(`'${param}.strict' must be a boolean.`, `${param}.strict`);
  }
  const schema = js.schema ?? { type: "object" };
  checkStrictSchema(schema, `${param}.schema`);
  return { type: "json_schema", name: js.name, strict: js.strict === true, schema: schema as Obj };
}
