import { parseRequestBody } from "@batchgen/core";
import { describe, expect, it } from "vitest";
import { LineFailure } from "./line-failure.js";
import { toGenerateRequest } from "./sampling-params.js";

const chat = (extra: Record<string, unknown> = {}) =>
  parseRequestBody("/v1/chat/completions", { model: "m", messages: [{ role: "user", content: "hi" }], ...extra });
const ctx = (promptLen: number, maxModelLen = 100) => ({ id: "r1", promptTokens: Array.from({ length: promptLen }, (_, i) => i + 3), maxModelLen, stopTokenIds: [] });

describe("toGenerateRequest", () => {
  it("maps OpenAI sampling fields onto the engine request", () => {
    const req = toGenerateRequest(chat({ temperature: 0.7, top_p: 0.9, top_k: 40, min_p: 0.05, seed: 1234, max_tokens: 20, priority: 3 }), ctx(10));
    expect(req).toEqual({ id: "r1", prompt: ctx(10).promptTokens, maxTokens: 20, temperature: 0.7, topP: 0.9, topK: 40, minP: 0.05, seed: 1234, priority: 3 });
  });

  it("uses OpenAI's defaults: temperature 1, top_p 1, top_k and min_p off, no seed", () => {
    const req = toGenerateRequest(chat(), ctx(10));
    expect(req.temperature).toBe(1);
    expect(req.topP).toBe(1);
    expect(req.topK).toBe(0);
    expect(req.minP).toBe(0);
    expect("seed" in req).toBe(false);
    expect("stopTokenIds" in req).toBe(false);
  });

  it("defaults max tokens to what the context has left after the prompt", () => {
    expect(toGenerateRequest(chat(), ctx(30, 100)).maxTokens).toBe(70);
  });

  it("prefers max_completion_tokens over max_tokens", () => {
    expect(toGenerateRequest(chat({ max_tokens: 50, max_completion_tokens: 7 }), ctx(10)).maxTokens).toBe(7);
  });

  it("passes the ignore_eos extension on, and leaves it out by default", () => {
    expect(toGenerateRequest(chat({ ignore_eos: true }), ctx(10)).ignoreEos).toBe(true);
    expect("ignoreEos" in toGenerateRequest(chat({ ignore_eos: false }), ctx(10))).toBe(false);
    expect("ignoreEos" in toGenerateRequest(chat(), ctx(10))).toBe(false);
  });

  it("passes single-token stop strings as stop token ids", () => {
    expect(toGenerateRequest(chat(), { ...ctx(5), stopTokenIds: [42, 43] }).stopTokenIds).toEqual([42, 43]);
  });

  it("refuses a prompt that fills the context", () => {
    const fail = () => toGenerateRequest(chat(), ctx(100, 100));
    expect(fail).toThrow(LineFailure);
    expect(fail).toThrow(/maximum context length is 100 tokens\. However, your messages resulted in 100 tokens/);
    try {
      fail();
    } catch (err) {
      expect((err as LineFailure).code).toBe("context_length_exceeded");
    }
  });

  it("refuses a prompt plus max_tokens beyond the context", () => {
    const completion = parseRequestBody("/v1/completions", { model: "m", prompt: "x", max_tokens: 60 });
    expect(() => toGenerateRequest(completion, ctx(50, 100))).toThrow(/you requested 110 tokens \(50 in the prompt, 60 in the completion\)/);
    expect(toGenerateRequest(completion, ctx(40, 100)).maxTokens).toBe(60);
  });
});
