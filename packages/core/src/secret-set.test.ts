import { describe, expect, it } from "vitest";
import { SecretSet } from "./secret-set.js";

describe("SecretSet", () => {
  it("accepts any listed secret (rotation) and nothing else", () => {
    const s = new SecretSet(["old-token", "new-token", ""]);
    expect(s.size).toBe(2);
    expect(s.has("old-token")).toBe(true);
    expect(s.has("new-token")).toBe(true);
    expect(s.has("new-toke")).toBe(false);
    expect(s.has("")).toBe(false);
    expect(s.has(undefined)).toBe(false);
  });

  it("reads bearer headers", () => {
    const s = new SecretSet(["k"]);
    expect(s.hasBearer("Bearer k")).toBe(true);
    expect(s.hasBearer("bearer k ")).toBe(true);
    expect(s.hasBearer("Bearer x")).toBe(false);
    expect(s.hasBearer("k")).toBe(false);
    expect(s.hasBearer(undefined)).toBe(false);
  });
});
