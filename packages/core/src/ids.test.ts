import { describe, expect, it } from "vitest";
import { idTimestamp, isId, newId } from "./ids.js";

describe("newId", () => {
  it("has the prefix, a fixed width and only lowercase hex after it", () => {
    for (const prefix of ["batch", "file", "req", "lease"] as const) {
      const id = newId(prefix);
      expect(id).toMatch(new RegExp(`^${prefix}_[0-9a-f]{32}$`));
      expect(isId(id, prefix)).toBe(true);
    }
    expect(isId(newId("batch"), "file")).toBe(false);
    expect(isId("batch_abc")).toBe(false);
    expect(isId("file-abc")).toBe(false);
  });

  it("is unique over many calls in the same millisecond", () => {
    const now = Date.now();
    const ids = new Set(Array.from({ length: 10_000 }, () => newId("req", now)));
    expect(ids.size).toBe(10_000);
  });

  it("sorts by creation time as a plain string and records that time", () => {
    const times = [0, 1, 999, 1_700_000_000_000, 1_700_000_000_001, 2_000_000_000_000, 2 ** 47];
    const ids = times.map((t) => newId("batch", t));
    expect([...ids].reverse().sort()).toEqual(ids);
    expect(ids.map(idTimestamp)).toEqual(times);
    expect(idTimestamp("not-an-id")).toBeNull();
  });
});
