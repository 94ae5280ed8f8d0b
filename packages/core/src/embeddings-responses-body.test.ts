// /v1/embeddings and /v1/responses bodies: what parseRequestBody reads from them,
// and what it refuses, naming the field (so ingest reports it with the line number).
import { describe, expect, it } from "vitest";
import { BatchgenError } from "./errors.js";
import { parseBatchLine } from "./parse-batch-line.js";
import { parseRequestBody } from "./request-body.js";

const EMB = "/v1/embeddings" as const;
const RESP = "/v1/responses" as const;

function paramOf(endpoint: typeof EMB | typeof RESP, body: unknown): string | undefined {
  try {
    parseRequestBody(endpoint, body);
  } catch (err) {
    expect(err).toBeInstanceOf(BatchgenError);
    return (err as BatchgenError).param;
  }
  throw new Error(`expected ${JSON.stringify(body)} to be rejected`);
}

describe("parseRequestBody: /v1/embeddings", () => {
  it("reads a string, a list of strings, token ids and lists of token ids, dimensions and encoding_format", () => {
    expect(parseRequestBody(EMB, { model: "m", input: "hi" })).toMatchObject({
      kind: "embedding",
      n: 1,
      embedding: { inputs: [{ text: "hi" }], dimensions: null, encodingFormat: "float" },
    });
    expect(parseRequestBody(EMB, { model: "m", input: ["a", "b"], dimensions: 64, encoding_format: "base64", user: "u" }).embedding).toEqual({
      inputs: [{ text: "a" }, { text: "b" }],
      dimensions: 64,
      encodingFormat: "base64",
    });
    expect(parseRequestBody(EMB, { model: "m", input: [1, 2, 3] }).embedding!.inputs).toEqual([{ tokenIds: [1, 2, 3] }]);
    expect(parseRequestBody(EMB, { model: "m", input: [[1], [2, 3]] }).embedding!.inputs).toEqual([{ tokenIds: [1] }, { tokenIds: [2, 3] }]);
  });

  it.each([
    [{ model: "m" }, "input"],
    [{ model: "m", input: "" }, "input"],
    [{ model: "m", input: [] }, "input"],
    [{ model: "m", input: ["ok", ""] }, "input[1]"],
    [{ model: "m", input: ["ok", 5] }, "input[1]"],
    [{ model: "m", input: [[1, -2]] }, "input[0][1]"],
    [{ model: "m", input: Array(2049).fill("x") }, "input"],
    [{ model: "m", input: "x", dimensions: 0 }, "dimensions"],
    [{ model: "m", input: "x", dimensions: 1.5 }, "dimensions"],
    [{ model: "m", input: "x", encoding_format: "int8" }, "encoding_format"],
    [{ input: "x" }, "model"],
  ])("refuses %j naming %s", (body, param) => {
    expect(paramOf(EMB, body)).toBe(param);
  });
});

describe("parseRequestBody: /v1/responses", () => {
  it("reads text input with instructions, max_output_tokens, sampling and text.format", () => {
    const r = parseRequestBody(RESP, {
      model: "m",
      input: "Say hi",
      instructions: "Be brief",
      max_output_tokens: 20,
      temperature: 0.5,
      top_p: 0.9,
      store: false,
      metadata: { a: "b" },
      text: { format: { type: "json_schema", name: "answer", strict: true, schema: { type: "object", properties: { a: { type: "string" } }, required: ["a"], additionalProperties: false } } },
    });
    expect(r).toMatchObject({
      kind: "response",
      messages: [
        { role: "system", content: "Be brief" },
        { role: "user", content: "Say hi" },
      ],
      instructions: "Be brief",
      maxTokens: 20,
      temperature: 0.5,
      topP: 0.9,
      responseFormat: { type: "json_schema", name: "answer", strict: true },
    });
  });

  it("reads message items with string or input_text / output_text content", () => {
    const r = parseRequestBody(RESP, {
      model: "m",
      input: [
        { role: "developer", content: "sys" },
        { type: "message", role: "user", content: [{ type: "input_text", text: "a" }, { type: "input_text", text: "b" }] },
        { role: "assistant", content: [{ type: "output_text", text: "c" }] },
        { role: "user", content: "d" },
      ],
    });
    expect(r.messages).toEqual([
      { role: "system", content: "sys" },
      { role: "user", content: "ab" },
      { role: "assistant", content: "c" },
      { role: "user", content: "d" },
    ]);
    expect(r.responseFormat).toEqual({ type: "text" });
    expect(parseRequestBody(RESP, { model: "m", input: "x", text: { format: { type: "json_object" } } }).responseFormat).toEqual({ type: "json_object" });
  });

  it.each([
    [{ model: "m" }, "input"],
    [{ model: "m", input: [] }, "input"],
    [{ model: "m", input: [{ type: "function_call_output", call_id: "c", output: "x" }] }, "input[0].type"],
    [{ model: "m", input: [{ role: "tool", content: "x" }] }, "input[0].role"],
    [{ model: "m", input: [{ role: "user", content: [{ type: "input_image", image_url: "u" }] }] }, "input[0].content[0].type"],
    [{ model: "m", input: "x", instructions: 5 }, "instructions"],
    [{ model: "m", input: "x", max_output_tokens: 0 }, "max_output_tokens"],
    [{ model: "m", input: "x", tools: [{ type: "web_search" }] }, "tools"],
    [{ model: "m", input: "x", previous_response_id: "resp_1" }, "previous_response_id"],
    [{ model: "m", input: "x", background: true }, "background"],
    [{ model: "m", input: "x", stream: true }, "stream"],
    [{ model: "m", input: "x", text: { format: { type: "xml" } } }, "text.format.type"],
    [{ model: "m", input: "x", text: { format: { type: "json_schema", name: "a b", schema: {} } } }, "text.format.name"],
    [{ model: "m", input: "x", text: { format: { type: "json_schema", name: "a", schema: { type: "string", pattern: "x" } } } }, "text.format.schema"],
  ])("refuses %j naming %s", (body, param) => {
    expect(paramOf(RESP, body)).toBe(param);
  });
});

describe("parseBatchLine: the new urls", () => {
  it("accepts /v1/embeddings and /v1/responses lines and names body fields in errors", () => {
    const emb = parseBatchLine(JSON.stringify({ custom_id: "a", method: "POST", url: EMB, body: { model: "m", input: ["x"] } }), 1);
    expect(emb).toMatchObject({ ok: true, request: { kind: "embedding" } });
    const resp = parseBatchLine(JSON.stringify({ custom_id: "b", method: "POST", url: RESP, body: { model: "m", input: "x" } }), 2);
    expect(resp).toMatchObject({ ok: true, request: { kind: "response" } });
    const bad = parseBatchLine(JSON.stringify({ custom_id: "c", method: "POST", url: EMB, body: { model: "m", input: "x", dimensions: -1 } }), 3);
    expect(bad).toMatchObject({ ok: false, code: "invalid_request", param: "body.dimensions", line: 3 });
  });
});
