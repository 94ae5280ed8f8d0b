import { describe, expect, it } from "vitest";
import { coordinatorConfigSchema, loadCoordinatorConfig, windowMs } from "./coordinator-config.js";

describe("coordinator config", () => {
  it("has working defaults", () => {
    const c = loadCoordinatorConfig({}, {});
    expect(c).toMatchObject({ httpPort: 8080, grpcPort: 50051, shardLines: 256, apiKeys: [], completionWindows: ["24h", "1h", "48h", "7d"] });
  });

  it("reads BATCHGEN_* variables and flags (flags win), parsing key:tenant pairs", () => {
    const c = loadCoordinatorConfig(
      { httpPort: "9000" },
      { BATCHGEN_HTTP_PORT: "7000", BATCHGEN_API_KEYS: "k1:alice, k2:bob,k3", BATCHGEN_SHARD_LINES: "64", BATCHGEN_MODELS: "a,b" },
    );
    expect(c.httpPort).toBe(9000);
    expect(c.shardLines).toBe(64);
    expect(c.models).toEqual(["a", "b"]);
    expect(c.apiKeys).toEqual([
      { key: "k1", tenant: "alice" },
      { key: "k2", tenant: "bob" },
      { key: "k3", tenant: "default" },
    ]);
  });

  it("reads per-tenant webhooks as tenant:whsec_...:url, and refuses a bad secret or url naming the setting", () => {
    const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const c = loadCoordinatorConfig({}, { BATCHGEN_WEBHOOKS: `acme:${secret}:https://hooks.acme.test/batchgen?x=1, bob:${secret}:http://127.0.0.1:9/h` });
    expect(c.webhooks).toEqual([
      { tenant: "acme", secret, url: "https://hooks.acme.test/batchgen?x=1" },
      { tenant: "bob", secret, url: "http://127.0.0.1:9/h" },
    ]);
    expect(coordinatorConfigSchema.parse(c).webhooks).toEqual(c.webhooks);
    expect(() => loadCoordinatorConfig({}, { BATCHGEN_WEBHOOKS: "acme:whsec_c2hvcnQ=:https://x.test/h" })).toThrow(/BATCHGEN_WEBHOOKS.*at least 16/s);
    expect(() => loadCoordinatorConfig({}, { BATCHGEN_WEBHOOKS: `acme:${secret}` })).toThrow(/BATCHGEN_WEBHOOKS/);
    // The secret never appears in the message.
    expect(() => loadCoordinatorConfig({}, { BATCHGEN_WEBHOOKS: `acme:${secret}:ftp://x` })).toThrow(/expected "tenant:whsec_...:https:\/\/host\/path", got "acme:whsec_\*\*\*:ftp:\/\/x"/);
  });

  it("accepts its own output again (a parsed config passed to createCoordinator)", () => {
    const c = loadCoordinatorConfig({ apiKeys: "k1:alice" }, {});
    expect(coordinatorConfigSchema.parse(c)).toEqual(c);
  });

  it("fails fast naming the bad setting", () => {
    expect(() => loadCoordinatorConfig({}, { BATCHGEN_SHARD_LINES: "lots" })).toThrow(/shardLines.*BATCHGEN_SHARD_LINES/);
    expect(() => loadCoordinatorConfig({ completionWindows: "24h,soon" }, {})).toThrow(/completionWindows/);
    expect(() => loadCoordinatorConfig({ apiKeys: ":x" }, {})).toThrow(/apiKeys/);
    expect(() => coordinatorConfigSchema.parse({ lockDurationMs: 10 })).toThrow();
  });

  it("converts completion windows", () => {
    expect(windowMs("24h")).toBe(86_400_000);
    expect(windowMs("90m")).toBe(5_400_000);
    expect(windowMs("2s")).toBe(2_000);
    expect(windowMs("7d")).toBe(604_800_000);
  });
});
