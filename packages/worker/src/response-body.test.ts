import { describe, expect, it } from "vitest";
import { buildResponseBody, nextResponseIdHex, responseBodyJson } from "./response-body.js";

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

  it("writes the same JSON text as JSON.stringify of the body, for both kinds", () => {
    for (const kind of ["chat", "completion"] as const) {
      const c = { kind, model: 'm "quoted"', text: 'a\nb "c" \u2028 \\', finishReason: "length" as const, promptTokens: 7, completionTokens: 2, id: "x-1", created: 1700000001 };
      expect(responseBodyJson(c)).toBe(JSON.stringify(buildResponseBody(c)));
    }
    const fresh = JSON.parse(responseBodyJson({ kind: "chat", model: "m", text: "", finishReason: "stop", promptTokens: 1, completionTokens: 0 })) as { id: string };
    expect(fresh.id).toMatch(/^chatcmpl-[0-9a-f]{24}$/);
  });

  it("gives ids that share a per-process prefix and count up", () => {
    const a = nextResponseIdHex();
    const b = nextResponseIdHex();
    expect(a).toMatch(/^[0-9a-f]{24}$/);
    expect(b.slice(0, 16)).toBe(a.slice(0, 16));
    expect(parseInt(b.slice(16), 16)).toBe(parseInt(a.slice(16), 16) + 1);
  });
});
