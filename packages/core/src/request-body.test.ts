import { describe, expect, it } from "vitest";
import { BatchgenError } from "./errors.js";
import { parseRequestBody } from "./request-body.js";

const CHAT = "/v1/chat/completions" as const;
const COMPLETION = "/v1/completions" as const;

function rejection(endpoint: typeof CHAT | typeof COMPLETION, body: unknown): BatchgenError {
  try {
    parseRequestBody(endpoint, body);
  } catch (err) {
    expect(err).toBeInstanceOf(BatchgenError);
    expect((err as BatchgenError).code).toBe("invalid_request");
    return err as BatchgenError;
  }
  throw new Error(`expected ${JSON.stringify(body)} to be rejected`);
}

const chat = (extra: Record<string, unknown> = {}) => ({ model: "m", messages: [{ role: "user", content: "hi" }], ...extra });
const completion = (extra: Record<string, unknown> = {}) => ({ model: "m", prompt: "Once upon", ...extra });

describe("parseRequestBody: chat", () => {
  it("reads a minimal body with OpenAI's defaults", () => {
    expect(parseRequestBody(CHAT, chat())).toEqual({
      endpoint: CHAT,
      model: "m",
      kind: "chat",
      messages: [{ role: "user", content: "hi" }],
      maxTokens: null,
      temperature: 1,
      topP: 1,
      topK: 0,
      minP: 0,
      seed: null,
      stop: [],
      priority: 0,
      ignoreEos: false,
      n: 1,
      logprobs: null,
      presencePenalty: 0,
      frequencyPenalty: 0,
      repetitionPenalty: 1,
      logitBias: new Map(),
      responseFormat: { type: "text" },
    });
  });

  it("reads every supported parameter", () => {
    const r = parseRequestBody(
      CHAT,
      chat({
        messages: [
          { role: "developer", content: "be brief" },
          { role: "system", content: "sys" },
          { role: "user", content: [{ type: "text", text: "a" }, { type: "text", text: "b" }] },
          { role: "assistant", content: "prev", name: "bot" },
        ],
        max_tokens: 10,
        temperature: 0,
        top_p: 0.5,
        top_k: 40,
        min_p: 0.05,
        seed: 1234,
        stop: ["\n", "END"],
        priority: 5,
        ignore_eos: true,
        n: 1,
        user: "ignored",
        store: false,
        metadata: { a: "b" },
      }),
    );
    expect(r.messages).toEqual([
      { role: "system", content: "be brief" },
      { role: "system", content: "sys" },
      { role: "user", content: "ab" },
      { role: "assistant", content: "prev" },
    ]);
    expect(r).toMatchObject({ maxTokens: 10, temperature: 0, topP: 0.5, topK: 40, minP: 0.05, seed: 1234, stop: ["\n", "END"], priority: 5, ignoreEos: true });
  });

  it("max_completion_tokens wins over max_tokens; null reads as absent", () => {
    expect(parseRequestBody(CHAT, chat({ max_tokens: 10, max_completion_tokens: 20 })).maxTokens).toBe(20);
    expect(parseRequestBody(CHAT, chat({ max_tokens: null, temperature: null, stop: null, seed: null })).maxTokens).toBeNull();
    expect(parseRequestBody(CHAT, chat({ stop: "###" })).stop).toEqual(["###"]);
    expect(parseRequestBody(CHAT, chat({ top_k: -1 })).topK).toBe(0);
    expect(parseRequestBody(CHAT, chat({ response_format: { type: "text" }, logprobs: false, frequency_penalty: 0 })).kind).toBe("chat");
  });

  it.each([
    [{ messages: [{ role: "user", content: "x" }] }, "model", "missing_required_parameter"],
    [chat({ model: "" }), "model", "invalid_request"],
    [chat({ model: 7 }), "model", "invalid_request"],
    [{ model: "m" }, "messages", "missing_required_parameter"],
    [chat({ messages: "hi" }), "messages", "invalid_request"],
    [chat({ messages: [] }), "messages", "invalid_request"],
    [chat({ messages: ["hi"] }), "messages[0]", "invalid_request"],
    [chat({ messages: [{ content: "x" }] }), "messages[0].role", "missing_required_parameter"],
    [chat({ messages: [{ role: "wizard", content: "x" }] }), "messages[0].role", "invalid_request"],
    [chat({ messages: [{ role: "tool", content: "x" }] }), "messages[0].role", "invalid_request"],
    [chat({ messages: [{ role: "user" }] }), "messages[0].content", "missing_required_parameter"],
    [chat({ messages: [{ role: "user", content: 5 }] }), "messages[0].content", "invalid_request"],
    [chat({ messages: [{ role: "user", content: [{ type: "image_url", image_url: {} }] }] }), "messages[0].content[0].type", "invalid_request"],
    [chat({ messages: [{ role: "user", content: [{ type: "text" }] }] }), "messages[0].content[0].text", "invalid_request"],
    [chat({ messages: [{ role: "user", content: ["x"] }] }), "messages[0].content[0]", "invalid_request"],
    [chat({ messages: [{ role: "assistant", content: "x", tool_calls: [] }] }), "messages[0].tool_calls", "invalid_request"],
    [chat({ max_tokens: 0 }), "max_tokens", "invalid_request"],
    [chat({ max_tokens: 1.5 }), "max_tokens", "invalid_request"],
    [chat({ max_completion_tokens: "10" }), "max_completion_tokens", "invalid_request"],
    [chat({ temperature: -0.1 }), "temperature", "invalid_request"],
    [chat({ temperature: 2.5 }), "temperature", "invalid_request"],
    [chat({ temperature: "hot" }), "temperature", "invalid_request"],
    [chat({ top_p: 0 }), "top_p", "invalid_request"],
    [chat({ top_p: 1.1 }), "top_p", "invalid_request"],
    [chat({ top_k: -2 }), "top_k", "invalid_request"],
    [chat({ top_k: 2.5 }), "top_k", "invalid_request"],
    [chat({ min_p: 1.5 }), "min_p", "invalid_request"],
    [chat({ seed: 1.5 }), "seed", "invalid_request"],
    [chat({ seed: "1" }), "seed", "invalid_request"],
    [chat({ stop: ["a", "b", "c", "d", "e"] }), "stop", "invalid_request"],
    [chat({ stop: [""] }), "stop[0]", "invalid_request"],
    [chat({ stop: 5 }), "stop", "invalid_request"],
    [chat({ priority: 0.5 }), "priority", "invalid_request"],
    [chat({ ignore_eos: "yes" }), "ignore_eos", "invalid_request"],
    [chat({ ignore_eos: 1 }), "ignore_eos", "invalid_request"],
    [chat({ n: 0 }), "n", "invalid_request"],
    [chat({ n: 129 }), "n", "invalid_request"],
    [chat({ logprobs: 1 }), "logprobs", "invalid_request"],
    [chat({ logprobs: true, top_logprobs: 21 }), "top_logprobs", "invalid_request"],
    [chat({ frequency_penalty: 2.5 }), "frequency_penalty", "invalid_request"],
    [chat({ presence_penalty: -3 }), "presence_penalty", "invalid_request"],
    [chat({ repetition_penalty: 0 }), "repetition_penalty", "invalid_request"],
    [chat({ logit_bias: { "50256": -101 } }), "logit_bias.50256", "invalid_request"],
    [chat({ logit_bias: { abc: 1 } }), "logit_bias.abc", "invalid_request"],
    [chat({ logit_bias: [1] }), "logit_bias", "invalid_request"],
    [chat({ response_format: { type: "xml" } }), "response_format.type", "invalid_request"],
    [chat({ response_format: { type: "json_schema" } }), "response_format.json_schema", "invalid_request"],
    [chat({ response_format: { type: "json_schema", json_schema: { name: "a b", schema: {} } } }), "response_format.json_schema.name", "invalid_request"],
    [chat({ response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "string", pattern: "a" } } } }), "response_format.json_schema.schema", "invalid_request"],
    [chat({ response_format: { type: "json_object" }, ignore_eos: true }), "ignore_eos", "invalid_request"],
    [chat({ stream: true }), "stream", "invalid_request"],
    [chat({ top_logprobs: 2 }), "top_logprobs", "invalid_request"],
    [chat({ tools: [] }), "tools", "invalid_request"],
    [chat({ tool_choice: "auto" }), "tool_choice", "invalid_request"],
    [chat({ functions: [] }), "functions", "invalid_request"],
  ])("rejects %j at param %s (%s)", (body, param, reason) => {
    const err = rejection(CHAT, body);
    expect(err.param).toBe(param);
    expect(err.reason).toBe(reason);
    expect(err.message.length).toBeGreaterThan(5);
  });

  it.each([null, "text", 42, [chat()]])("rejects a body that is not an object: %j", (body) => {
    expect(rejection(CHAT, body).param).toBe("body");
  });
});

describe("parseRequestBody: completion", () => {
  it("reads a text prompt, a one-element list and token ids", () => {
    expect(parseRequestBody(COMPLETION, completion())).toMatchObject({ kind: "completion", prompt: "Once upon", endpoint: COMPLETION });
    expect(parseRequestBody(COMPLETION, completion({ prompt: ["only one"] })).prompt).toBe("only one");
    expect(parseRequestBody(COMPLETION, completion({ prompt: "" })).prompt).toBe("");
    const ids = parseRequestBody(COMPLETION, completion({ prompt: [1, 2, 3] }));
    expect(ids.promptTokenIds).toEqual([1, 2, 3]);
    expect(ids.prompt).toBeUndefined();
    expect(parseRequestBody(COMPLETION, completion({ prompt: [[4, 5]] })).promptTokenIds).toEqual([4, 5]);
    expect(parseRequestBody(COMPLETION, completion({ best_of: 1, echo: false })).messages).toBeUndefined();
  });

  it("reads the ignore_eos extension (default false; null reads as absent)", () => {
    expect(parseRequestBody(COMPLETION, completion({ prompt: [7, 8], ignore_eos: true })).ignoreEos).toBe(true);
    expect(parseRequestBody(COMPLETION, completion({ ignore_eos: false })).ignoreEos).toBe(false);
    expect(parseRequestBody(COMPLETION, completion({ ignore_eos: null })).ignoreEos).toBe(false);
    expect(parseRequestBody(COMPLETION, completion()).ignoreEos).toBe(false);
  });

  it.each([
    [{ model: "m" }, "prompt", "missing_required_parameter"],
    [completion({ prompt: ["a", "b"] }), "prompt", "invalid_request"],
    [completion({ prompt: [[1], [2]] }), "prompt", "invalid_request"],
    [completion({ prompt: [1, -2] }), "prompt[1]", "invalid_request"],
    [completion({ prompt: [1, 2.5] }), "prompt[1]", "invalid_request"],
    [completion({ prompt: [] }), "prompt", "invalid_request"],
    [completion({ prompt: { text: "x" } }), "prompt", "invalid_request"],
    [completion({ best_of: 3 }), "best_of", "invalid_request"],
    [completion({ echo: true }), "echo", "invalid_request"],
    [completion({ suffix: "end" }), "suffix", "invalid_request"],
    [completion({ logprobs: 21 }), "logprobs", "invalid_request"],
    [completion({ logprobs: true }), "logprobs", "invalid_request"],
  ])("rejects %j at param %s (%s)", (body, param, reason) => {
    const err = rejection(COMPLETION, body);
    expect(err.param).toBe(param);
    expect(err.reason).toBe(reason);
  });

  it("a chat body sent to the completions endpoint misses its prompt", () => {
    expect(rejection(COMPLETION, chat()).param).toBe("prompt");
    expect(rejection(CHAT, completion()).param).toBe("messages");
  });
});

describe("numeric ranges (REQUEST_LIMITS, shared with what the engine accepts)", () => {
  const INT32_MAX = 2 ** 31 - 1;
  it.each([
    ["top_k", 2 ** 31],
    ["top_k", -2],
    ["priority", 2 ** 31],
    ["priority", -(2 ** 31) - 1],
    ["max_tokens", 2 ** 31],
    ["max_tokens", 0],
    ["max_completion_tokens", 2 ** 40],
    ["temperature", 2.5],
    ["temperature", -0.1],
    ["top_p", 0],
    ["top_p", 1.01],
    ["min_p", -0.5],
    ["min_p", 1.5],
    ["top_k", 1.5],
    ["priority", 0.5],
  ])("rejects %s = %d, naming the range", (key, value) => {
    const err = rejection(CHAT, chat({ [key]: value }));
    expect(err.param).toBe(key);
    expect(err.message).toContain(`'${key}' must be`);
  });

  it("accepts the ends of every range", () => {
    const r = parseRequestBody(CHAT, chat({ top_k: INT32_MAX, priority: -(2 ** 31), max_tokens: INT32_MAX, temperature: 2, top_p: 1, min_p: 1 }));
    expect(r).toMatchObject({ topK: INT32_MAX, priority: -(2 ** 31), maxTokens: INT32_MAX, temperature: 2, topP: 1, minP: 1 });
    expect(parseRequestBody(CHAT, chat({ top_k: -1, priority: INT32_MAX, temperature: 0, min_p: 0 }))).toMatchObject({ topK: 0, priority: INT32_MAX });
    expect(rejection(COMPLETION, completion({ prompt: [1, 2 ** 31] })).param).toBe("prompt[1]");
    expect(parseRequestBody(COMPLETION, completion({ prompt: [0, INT32_MAX] })).promptTokenIds).toEqual([0, INT32_MAX]);
  });
});

describe("parseRequestBody: choices, logprobs, penalties, response formats", () => {
  const schema = {
    type: "object",
    properties: { name: { type: "string" }, tags: { type: "array", items: { $ref: "#/$defs/tag" } } },
    required: ["name", "tags"],
    additionalProperties: false,
    $defs: { tag: { enum: ["a", "b"] } },
  };

  it("reads them on a chat line", () => {
    const r = parseRequestBody(
      CHAT,
      chat({
        n: 4,
        logprobs: true,
        top_logprobs: 5,
        presence_penalty: 0.5,
        frequency_penalty: -1,
        repetition_penalty: 1.2,
        logit_bias: { "12": -100, "7": 3.5 },
        response_format: { type: "json_schema", json_schema: { name: "person", strict: true, schema } },
      }),
    );
    expect(r).toMatchObject({ n: 4, logprobs: 5, presencePenalty: 0.5, frequencyPenalty: -1, repetitionPenalty: 1.2 });
    expect([...r.logitBias]).toEqual([[7, 3.5], [12, -100]]);
    expect(r.responseFormat).toEqual({ type: "json_schema", name: "person", strict: true, schema });
  });

  it("defaults: one choice, no logprobs, no penalties, text", () => {
    const r = parseRequestBody(CHAT, chat({ logprobs: false }));
    expect(r).toMatchObject({ n: 1, logprobs: null, presencePenalty: 0, frequencyPenalty: 0, repetitionPenalty: 1 });
    expect(r.logitBias.size).toBe(0);
    expect(r.responseFormat).toEqual({ type: "text" });
    expect(parseRequestBody(CHAT, chat({ logprobs: true })).logprobs).toBe(0);
  });

  it("completions take logprobs as a count and response_format as an extension", () => {
    const r = parseRequestBody(COMPLETION, completion({ logprobs: 3, response_format: { type: "json_object" } }));
    expect(r.logprobs).toBe(3);
    expect(r.responseFormat).toEqual({ type: "json_object" });
    expect(parseRequestBody(COMPLETION, completion({ logprobs: 0 })).logprobs).toBe(0);
  });

  it.each([
    [{ type: "string", format: "email" }, "#: keyword 'format'"],
    [{ type: "object", properties: { a: { type: "integer", minimum: 5 } } }, "#/properties/a: minimum is supported only"],
    [{ type: "object", properties: { a: { type: "string", minimum: 0 } } }, "#/properties/a: keyword 'minimum' does not apply"],
    [{ type: "object", properties: { a: { oneOf: [{ type: "string" }] } } }, "#/properties/a: keyword 'oneOf'"],
    [{ type: "array", items: { $ref: "#/$defs/x" } }, "#/items: $ref '#/$defs/x' points at nothing"],
    [{ type: "object", properties: {}, required: ["z"] }, "'z'"],
    [{ type: "array", items: [{ type: "string" }] }, "tuple"],
    [{ type: "strin" }, "'strin'"],
  ])("a schema outside the strict subset (%j) names what is wrong", (bad, what) => {
    const err = rejection(CHAT, chat({ response_format: { type: "json_schema", json_schema: { name: "x", schema: bad } } }));
    expect(err.param).toBe("response_format.json_schema.schema");
    expect(err.message).toContain(what);
  });
});
