import { describe, expect, it } from "vitest";
import { decodePart, encodePart, errorLine, partKey, partsPrefix, responseLine, shardOfPartKey } from "./result-part.js";

describe("result parts", () => {
  it("round-trips lines and keeps each output line one valid JSON line", () => {
    const ok = responseLine("c1", 200, '{\n  "object": "chat.completion",\n  "x": "a\\nb"\n}');
    const bad = errorLine("c2", "context_length_exceeded", "too long");
    expect(ok).not.toContain("\n");
    const parsed = JSON.parse(ok);
    expect(parsed).toMatchObject({ custom_id: "c1", error: null, response: { status_code: 200, body: { object: "chat.completion", x: "a\nb" } } });
    expect(parsed.id).toMatch(/^batch_req_[0-9a-f]{32}$/);
    expect(parsed.response.request_id).toMatch(/^req_/);
    expect(JSON.parse(bad)).toMatchObject({ custom_id: "c2", response: null, error: { code: "context_length_exceeded", message: "too long" } });
    const text = encodePart([
      { line: 7, ok: true, json: ok },
      { line: 9, ok: false, json: bad },
    ]);
    expect([...decodePart(text)]).toEqual([
      { line: 7, ok: true, json: ok },
      { line: 9, ok: false, json: bad },
    ]);
  });

  it("rejects a body that is not JSON", () => {
    expect(() => responseLine("c", 200, "not json")).toThrow();
  });

  it("names parts so they sort by shard, then by time", () => {
    const a = partKey("batch_x", 2, "lease_a", 0, 1000);
    const b = partKey("batch_x", 2, "lease_b", 0, 999);
    const c = partKey("batch_x", 10, "lease_a", 0, 1);
    expect([a, b, c].sort()).toEqual([b, a, c]);
    expect(a.startsWith(partsPrefix("batch_x"))).toBe(true);
    expect(shardOfPartKey("batch_x", c)).toBe(10);
  });
});
