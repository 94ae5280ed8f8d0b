import { describe, expect, it } from "vitest";
import { TenantAuth } from "./tenant-auth.js";

describe("TenantAuth", () => {
  const auth = new TenantAuth([{ key: "k1", tenant: "alice" }]);
  it("maps a bearer key to its tenant", () => {
    expect(auth.tenantOf("Bearer k1")).toBe("alice");
    expect(auth.tenantOf("bearer k1 ")).toBe("alice");
  });
  it("refuses a wrong or missing key as unauthenticated", () => {
    expect(() => auth.tenantOf("Bearer k2")).toThrow(expect.objectContaining({ code: "unauthenticated", reason: "invalid_api_key" }));
    expect(() => auth.tenantOf(undefined)).toThrow(expect.objectContaining({ code: "unauthenticated", reason: "missing_api_key" }));
    expect(() => auth.tenantOf("Basic abc")).toThrow(expect.objectContaining({ code: "unauthenticated" }));
  });
  it("with no keys configured everyone is the default tenant", () => {
    expect(new TenantAuth([]).tenantOf(undefined)).toBe("default");
  });
});
