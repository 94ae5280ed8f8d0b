import { describe, expect, it } from "vitest";
import { parseBatchLine } from "./parse-batch-line.js";

const good = {
  custom_id: "req-1",
  method: "POST",
  url: "/v1/chat/completions",
  body: { model: "gemma-2b", messages: [{ role: "user", content: "hello" }], max_tokens: 8 },
};
const line = (o: unknown) => JSON.stringify(o);

describe("parseBatchLine", () => {
  it("accepts a chat line and a completion line", () => {
    const r = parseBatchLine(line(good), 1);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.line).toEqual(good);
    expect(r.request).toMatchObject({ kind: "chat", model: "gemma-2b", maxTokens: 8 });
    const c = parseBatchLine(line({ custom_id: "c", method: "POST", url: "/v1/completions", body: { model: "m", prompt: "x" } }), 2);
    expect(c.ok && c.request.kind).toBe("completion");
  });

  it("tolerates surrounding whitespace and a trailing carriage return", () => {
    expect(parseBatchLine(`  ${line(good)}\r`, 1).ok).toBe(true);
  });

  it.each([
    ["not json", "{nope", "invalid_json_line", null],
    ["truncated json", line(good).slice(0, 30), "invalid_json_line", null],
    ["an array", "[1,2]", "invalid_json_line", null],
    ["a string", '"x"', "invalid_json_line", null],
    ["empty", "", "invalid_json_line", null],
    ["no custom_id", line({ ...good, custom_id: undefined }), "missing_required_parameter", "custom_id"],
    ["null custom_id", line({ ...good, custom_id: null }), "missing_required_parameter", "custom_id"],
    ["no method", line({ ...good, method: undefined }), "missing_required_parameter", "method"],
    ["no url", line({ ...good, url: undefined }), "missing_required_parameter", "url"],
    ["no body", line({ ...good, body: undefined }), "missing_required_parameter", "body"],
    ["numeric custom_id", line({ ...good, custom_id: 5 }), "invalid_request", "custom_id"],
    ["empty custom_id", line({ ...good, custom_id: "" }), "invalid_request", "custom_id"],
    ["huge custom_id", line({ ...good, custom_id: "x".repeat(513) }), "invalid_request", "custom_id"],
    ["GET", line({ ...good, method: "GET" }), "invalid_method", "method"],
    ["unknown url", line({ ...good, url: "/v1/moderations" }), "invalid_url", "url"],
    ["body not an object", line({ ...good, body: "text" }), "invalid_request", "body"],
    ["body an array", line({ ...good, body: [] }), "invalid_request", "body"],
    ["no model", line({ ...good, body: { messages: good.body.messages } }), "missing_required_parameter", "body.model"],
    ["no messages", line({ ...good, body: { model: "m" } }), "missing_required_parameter", "body.messages"],
    ["bad temperature", line({ ...good, body: { ...good.body, temperature: 9 } }), "invalid_request", "body.temperature"],
    ["bad message role", line({ ...good, body: { ...good.body, messages: [{ role: "x", content: "y" }] } }), "invalid_request", "body.messages[0].role"],
    ["n above 128", line({ ...good, body: { ...good.body, n: 200 } }), "invalid_request", "body.n"],
    [
      "schema outside the strict subset",
      line({ ...good, body: { ...good.body, response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "string", pattern: "^a" } } } } }),
      "invalid_request",
      "body.response_format.json_schema.schema",
    ],
  ])("%s -> %s", (_name, text, code, param) => {
    const r = parseBatchLine(text, 17);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.code).toBe(code);
    expect(r.param).toBe(param);
    expect(r.line).toBe(17);
    expect(r.message).not.toMatch(/\bat .*\.ts:\d+/);
  });
});
