import { describe, expect, it } from "vitest";
import { decodePart, encodePart, errorLine, lineIds, partKey, partsPrefix, responseLine, shardOfPartKey } from "./result-part.js";

describe("result parts", () => {
  it("round-trips lines and keeps each output line one valid JSON line", () => {
    const ok = responseLine(lineIds("lease_0123abcd", 7), "c1", 200, '{\n  "object": "chat.completion",\n  "x": "a\\nb"\n}');
    const bad = errorLine(lineIds("lease_0123abcd", 9), "c2", "context_length_exceeded", "too long");
    const plain = responseLine(lineIds("lease_0123abcd", 8), "c\"3", 200, ' {"a":1} ');
    expect(JSON.parse(plain)).toEqual({ id: "batch_req_0123abcd00000008", custom_id: 'c"3', response: { status_code: 200, request_id: "req_0123abcd00000008", body: { a: 1 } }, error: null });
    expect(ok).not.toContain("\n");
    const parsed = JSON.parse(ok);
    expect(parsed).toMatchObject({ custom_id: "c1", error: null, response: { status_code: 200, body: { object: "chat.completion", x: "a\nb" } } });
    expect(parsed.id).toBe("batch_req_0123abcd00000007");
    expect(parsed.response.request_id).toBe("req_0123abcd00000007");
    expect(JSON.parse(errorLine(null, "c4", "x", "y")).id).toMatch(/^batch_req_[0-9a-f]{32}$/);
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
    expect(() => responseLine(lineIds("lease_1", 1), "c", 200, "not json")).toThrow();
    expect(() => responseLine(lineIds("lease_1", 1), "c", 200, '{"a":1} {"b":2}')).toThrow();
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
