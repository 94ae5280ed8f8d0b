// Configuration is data, validated once: flags > environment > schema defaults.
// Each key of the (object) schema maps to an environment variable PREFIX_SNAKE_CASE
// (nested objects add a segment: s3.bucket -> PREFIX_S3_BUCKET) and to a flag with the
// same key. Env strings (and string flags) are coerced to what the field expects
// (numbers, booleans, comma-separated or JSON arrays, JSON objects) before validation,
// and a bad value throws BatchgenError("invalid_request") naming the setting.
import type { ZodType } from "zod";
import { BatchgenError } from "./errors.js";

export interface ConfigSources {
  env?: Record<string, string | undefined>;
  /** e.g. "BATCHGEN" (a trailing "_" is added when missing); no prefix when empty. */
  envPrefix?: string;
  /** Already-parsed CLI flags or programmatic options, keyed like the schema. */
  flags?: Record<string, unknown>;
}

interface ZodInternals {
  _zod: { def: { type: string; innerType?: ZodType; in?: ZodType; shape?: Record<string, ZodType> } };
}

type Kind = "number" | "boolean" | "array" | "object" | "json" | "string";

function defOf(schema: ZodType): ZodInternals["_zod"]["def"] {
  return (schema as unknown as ZodInternals)._zod.def;
}

/** Strip wrappers (default, optional, nullable, pipe, ...) down to the value's own type. */
function unwrap(schema: ZodType): ZodType {
  let s = schema;
  for (let i = 0; i < 32; i++) {
    const def = defOf(s);
    const next = def.innerType ?? (def.type === "pipe" ? def.in : undefined);
    if (!next) return s;
    s = next;
  }
  return s;
}

function kindOf(schema: ZodType): Kind {
  switch (defOf(unwrap(schema)).type) {
    case "number":
    case "bigint":
      return "number";
    case "boolean":
      return "boolean";
    case "array":
    case "tuple":
      return "array";
    case "object":
      return "object";
    case "record":
    case "map":
      return "json";
    default:
      return "string";
  }
}

function shapeOf(schema: ZodType): Record<string, ZodType> | undefined {
  const inner = unwrap(schema);
  const def = defOf(inner);
  if (def.type !== "object") return undefined;
  return (inner as unknown as { shape: Record<string, ZodType> }).shape;
}

export function toEnvName(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1_$2")
    .replace(/[-.\s]+/g, "_")
    .toUpperCase();
}

export function toFlagName(path: readonly string[]): string {
  return "--" + path.map((k) => toEnvName(k).toLowerCase().replace(/_/g, "-")).join("-");
}

const TRUE = new Set(["true", "1", "yes", "on"]);
const FALSE = new Set(["false", "0", "no", "off"]);

/** Coerce a string to the field's kind; on no sensible reading keep the string so validation names it. */
function coerce(raw: string, kind: Kind): unknown {
  const s = raw.trim();
  switch (kind) {
    case "number":
      return s !== "" && Number.isFinite(Number(s)) ? Number(s) : raw;
    case "boolean":
      if (TRUE.has(s.toLowerCase())) return true;
      if (FALSE.has(s.toLowerCase())) return false;
      return raw;
    case "array":
      if (s.startsWith("[")) return parseJson(raw);
      return s === "" ? [] : s.split(",").map((x) => x.trim());
    case "object":
    case "json":
      return parseJson(raw);
    default:
      return raw;
  }
}

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

type Source = { kind: "env"; name: string } | { kind: "flag"; name: string };

function gather(
  shape: Record<string, ZodType>,
  sources: ConfigSources,
  envPrefix: string,
  flags: Record<string, unknown> | undefined,
  path: string[],
  origin: Map<string, Source>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(shape)) {
    const keyPath = [...path, key];
    const envName = envPrefix + toEnvName(key);
    const nested = shapeOf(field);
    const flag = flags?.[key];
    if (nested && (flag === undefined || isPlainObject(flag))) {
      const sub = gather(nested, sources, envName + "_", flag as Record<string, unknown> | undefined, keyPath, origin);
      if (Object.keys(sub).length > 0) out[key] = sub;
      continue;
    }
    const kind = kindOf(field);
    if (flag !== undefined) {
      out[key] = typeof flag === "string" ? coerce(flag, kind) : flag;
      origin.set(keyPath.join("."), { kind: "flag", name: toFlagName(keyPath) });
      continue;
    }
    const env = sources.env?.[envName];
    if (env !== undefined) {
      out[key] = coerce(env, kind);
      origin.set(keyPath.join("."), { kind: "env", name: envName });
    }
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function settingName(path: readonly PropertyKey[], origin: Map<string, Source>, envPrefix: string): string {
  const keys = path.map(String);
  // The innermost recorded source covering this path (an array element belongs to its array).
  for (let n = keys.length; n > 0; n--) {
    const src = origin.get(keys.slice(0, n).join("."));
    if (src) return `${keys.join(".")} (${src.kind === "env" ? "environment variable" : "flag"} ${src.name})`;
  }
  const fieldKeys = keys.filter((k) => !/^\d+$/.test(k));
  if (fieldKeys.length === 0) return "configuration";
  const env = envPrefix + fieldKeys.map(toEnvName).join("_");
  return `${keys.join(".")} (set ${env} or ${toFlagName(fieldKeys)})`;
}

/** Validate configuration from flags > env > defaults; throws BatchgenError naming each bad setting. */
export function loadConfig<T>(schema: ZodType<T>, sources: ConfigSources = {}): T {
  const rawPrefix = sources.envPrefix ?? "";
  const envPrefix = rawPrefix === "" || rawPrefix.endsWith("_") ? rawPrefix : rawPrefix + "_";
  const shape = shapeOf(schema);
  const origin = new Map<string, Source>();
  const input = shape ? gather(shape, sources, envPrefix, sources.flags, [], origin) : (sources.flags ?? {});
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => `${settingName(issue.path, origin, envPrefix)}: ${issue.message}`);
  const first = result.error.issues[0];
  return throwConfigError(problems, first ? first.path.map(String).join(".") : undefined, result.error);
}

function throwConfigError(problems: string[], param: string | undefined, cause: unknown): never {
  throw new BatchgenError("invalid_request", `invalid configuration: ${problems.join("; ")}`, {
    cause,
    ...(param ? { param } : {}),
  });
}
