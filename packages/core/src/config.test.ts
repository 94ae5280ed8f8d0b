import { z } from "zod";
import { describe, expect, it } from "vitest";
import { loadConfig, toEnvName, toFlagName } from "./config.js";
import { BatchgenError } from "./errors.js";

const schema = z.object({
  httpPort: z.number().int().min(1).max(65535).default(8080),
  redisUrl: z.string().url(),
  apiKeys: z.array(z.string()).default([]),
  drain: z.boolean().default(false),
  logLevel: z.enum(["debug", "info", "warn", "error"]).default("info"),
  tenants: z.record(z.string(), z.string()).default({}),
  s3: z
    .object({
      bucket: z.string().min(1),
      partSizeMb: z.number().positive().default(8),
    })
    .optional(),
});

function failure(fn: () => unknown): BatchgenError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BatchgenError);
    expect((err as BatchgenError).code).toBe("invalid_request");
    return err as BatchgenError;
  }
  throw new Error("expected loadConfig to throw");
}

describe("loadConfig", () => {
  it("fills defaults and reads PREFIX_SNAKE_CASE variables, coercing their strings", () => {
    const cfg = loadConfig(schema, {
      envPrefix: "BATCHGEN",
      env: {
        BATCHGEN_REDIS_URL: "redis://127.0.0.1:6379",
        BATCHGEN_HTTP_PORT: "9090",
        BATCHGEN_API_KEYS: "k1, k2",
        BATCHGEN_DRAIN: "yes",
        BATCHGEN_TENANTS: '{"k1":"acme"}',
        BATCHGEN_S3_BUCKET: "bkt",
        OTHER_HTTP_PORT: "1",
      },
    });
    expect(cfg).toEqual({
      httpPort: 9090,
      redisUrl: "redis://127.0.0.1:6379",
      apiKeys: ["k1", "k2"],
      drain: true,
      logLevel: "info",
      tenants: { k1: "acme" },
      s3: { bucket: "bkt", partSizeMb: 8 },
    });
  });

  it("flags beat env, env beats defaults", () => {
    const env = { APP_REDIS_URL: "redis://env:1", APP_HTTP_PORT: "7000", APP_LOG_LEVEL: "warn" };
    const cfg = loadConfig(schema, { envPrefix: "APP_", env, flags: { httpPort: 7100, redisUrl: undefined } });
    expect(cfg.httpPort).toBe(7100);
    expect(cfg.redisUrl).toBe("redis://env:1");
    expect(cfg.logLevel).toBe("warn");
    expect(cfg.drain).toBe(false);
    // String flags (from a CLI parser) are coerced like env values.
    expect(loadConfig(schema, { env, envPrefix: "APP", flags: { httpPort: "7200", drain: "false" } })).toMatchObject({ httpPort: 7200, drain: false });
    // A JSON array in env works too.
    expect(loadConfig(schema, { env: { ...env, APP_API_KEYS: '["a,b","c"]' }, envPrefix: "APP" }).apiKeys).toEqual(["a,b", "c"]);
    // Nested flags merge into the nested object, over env.
    const nested = loadConfig(schema, { env: { ...env, APP_S3_BUCKET: "envb", APP_S3_PART_SIZE_MB: "16" }, envPrefix: "APP", flags: { s3: { bucket: "flagb" } } });
    expect(nested.s3).toEqual({ bucket: "flagb", partSizeMb: 16 });
  });

  it("a bad env value names the variable and the setting, without echoing the value", () => {
    const err = failure(() =>
      loadConfig(schema, { envPrefix: "BATCHGEN", env: { BATCHGEN_REDIS_URL: "redis://x:1", BATCHGEN_HTTP_PORT: "eighty" } }),
    );
    expect(err.message).toContain("httpPort");
    expect(err.message).toContain("BATCHGEN_HTTP_PORT");
    expect(err.message).not.toContain("eighty");
    expect(err.param).toBe("httpPort");
  });

  it("an out-of-range flag names the flag", () => {
    const err = failure(() => loadConfig(schema, { env: { REDIS_URL: "redis://x:1" }, flags: { httpPort: 70000 } }));
    expect(err.message).toContain("--http-port");
  });

  it("a missing required setting says how to set it", () => {
    const err = failure(() => loadConfig(schema, { envPrefix: "BATCHGEN", env: {} }));
    expect(err.message).toContain("redisUrl");
    expect(err.message).toContain("BATCHGEN_REDIS_URL");
    expect(err.message).toContain("--redis-url");
  });

  it("reports every bad setting at once, including nested ones", () => {
    const err = failure(() =>
      loadConfig(schema, {
        envPrefix: "B",
        env: { B_REDIS_URL: "not a url", B_DRAIN: "maybe", B_LOG_LEVEL: "chatty", B_S3_BUCKET: "" },
      }),
    );
    for (const name of ["B_REDIS_URL", "B_DRAIN", "B_LOG_LEVEL", "B_S3_BUCKET", "s3.bucket"]) expect(err.message).toContain(name);
  });

  it("a bad array element points at its variable", () => {
    const strict = z.object({ ports: z.array(z.number()) });
    const err = failure(() => loadConfig(strict, { env: { PORTS: '[1, "x"]' } }));
    expect(err.message).toContain("ports.1");
    expect(err.message).toContain("environment variable PORTS");
  });
});

describe("setting names", () => {
  it.each([
    ["redisUrl", "REDIS_URL"],
    ["httpPort", "HTTP_PORT"],
    ["s3", "S3"],
    ["maxTokensPerStep", "MAX_TOKENS_PER_STEP"],
    ["objectStoreURL", "OBJECT_STORE_URL"],
    ["grpcTLSCert", "GRPC_TLS_CERT"],
  ])("%s -> %s", (key, env) => {
    expect(toEnvName(key)).toBe(env);
  });

  it("flags are kebab-case paths", () => {
    expect(toFlagName(["redisUrl"])).toBe("--redis-url");
    expect(toFlagName(["s3", "partSizeMb"])).toBe("--s3-part-size-mb");
  });
});
