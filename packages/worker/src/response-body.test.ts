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

describe("choices and logprobs", () => {
  const lp = [
    { token: "Hi", bytes: [72, 105], logprob: -0.5, top: [{ token: "Hi", bytes: [72, 105], logprob: -0.5 }, { token: "Yo", bytes: [89, 111], logprob: -1.25 }] },
    { token: "!", bytes: [33], logprob: -2, top: [{ token: ".", bytes: [46], logprob: -1 }, { token: "!", bytes: [33], logprob: -2 }] },
  ];

  it("chat: n choices with OpenAI's logprobs.content", () => {
    const c = {
      kind: "chat" as const, model: "m", text: "Hi!", finishReason: "stop" as const, logprobs: lp,
      moreChoices: [{ text: "Yo", finishReason: "length" as const, logprobs: [] }], promptTokens: 3, completionTokens: 3, id: "x", created: 1,
    };
    const body = JSON.parse(responseBodyJson(c)) as { choices: Array<{ index: number; logprobs: { content: unknown[]; refusal: null }; finish_reason: string }> };
    expect(body).toEqual(buildResponseBody(c));
    expect(body.choices.map((ch) => [ch.index, ch.finish_reason])).toEqual([[0, "stop"], [1, "length"]]);
    expect(body.choices[0]!.logprobs).toEqual({
      content: [
        { token: "Hi", logprob: -0.5, bytes: [72, 105], top_logprobs: [{ token: "Hi", logprob: -0.5, bytes: [72, 105] }, { token: "Yo", logprob: -1.25, bytes: [89, 111] }] },
        { token: "!", logprob: -2, bytes: [33], top_logprobs: [{ token: ".", logprob: -1, bytes: [46] }, { token: "!", logprob: -2, bytes: [33] }] },
      ],
      refusal: null,
    });
  });

  it("completions: the legacy tokens / token_logprobs / top_logprobs / text_offset shape", () => {
    const body = buildResponseBody({ kind: "completion", model: "m", text: "Hi!", finishReason: "stop", logprobs: lp, promptTokens: 1, completionTokens: 2 });
    expect(body.choices[0]!.logprobs).toEqual({
      tokens: ["Hi", "!"],
      token_logprobs: [-0.5, -2],
      top_logprobs: [{ Hi: -0.5, Yo: -1.25 }, { ".": -1, "!": -2 }],
      text_offset: [0, 2],
    });
  });
});
