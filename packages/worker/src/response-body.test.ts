import { describe, expect, it } from "vitest";
import { buildResponseBody } from "./response-body.js";

describe("buildResponseBody", () => {
  it("builds an OpenAI chat.completion with usage", () => {
    const body = buildResponseBody({ kind: "chat", model: "tiny-gemma", text: "hi there", finishReason: "stop", promptTokens: 12, completionTokens: 3, created: 1700000000 });
    expect(body).toMatchObject({
      object: "chat.completion",
      created: 1700000000,
      model: "tiny-gemma",
      choices: [{ index: 0, message: { role: "assistant", content: "hi there" }, finish_reason: "stop", logprobs: null }],
      usage: { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 },
    });
    expect(body.id).toMatch(/^chatcmpl-[0-9a-f]{24}$/);
  });

  it("builds an OpenAI text_completion with usage", () => {
    const body = buildResponseBody({ kind: "completion", model: "m", text: "abc", finishReason: "length", promptTokens: 5, completionTokens: 16 });
    expect(body).toMatchObject({
      object: "text_completion",
      model: "m",
      choices: [{ index: 0, text: "abc", finish_reason: "length", logprobs: null }],
      usage: { prompt_tokens: 5, completion_tokens: 16, total_tokens: 21 },
    });
    expect(body.id).toMatch(/^cmpl-/);
    expect(Math.abs(body.created - Date.now() / 1000)).toBeLessThan(5);
  });

  it("gives every body its own id", () => {
    const c = { kind: "chat" as const, model: "m", text: "", finishReason: "stop" as const, promptTokens: 1, completionTokens: 0 };
    expect(buildResponseBody(c).id).not.toBe(buildResponseBody(c).id);
  });
});
