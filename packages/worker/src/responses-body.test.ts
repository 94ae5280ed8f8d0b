import type { ParsedRequest } from "@batchgen/core";
import { parseRequestBody } from "@batchgen/core";
import { describe, expect, it } from "vitest";
import { buildResponseObject } from "./responses-body.js";

const request = (body: Record<string, unknown>): ParsedRequest => parseRequestBody("/v1/responses", { model: "m", input: "hi", ...body });

describe("buildResponseObject", () => {
  it("a finished line: completed, one assistant message, usage and settings echoed", () => {
    const r = buildResponseObject(
      { model: "m", text: "hello", finishReason: "stop", inputTokens: 5, cachedTokens: 2, outputTokens: 3, createdAt: 100 },
      request({ instructions: "brief", max_output_tokens: 9, temperature: 0.2 }),
    );
    expect(r).toMatchObject({
      object: "response",
      status: "completed",
      incomplete_details: null,
      instructions: "brief",
      max_output_tokens: 9,
      temperature: 0.2,
      top_p: 1,
      text: { format: { type: "text" } },
      output: [{ type: "message", role: "assistant", status: "completed", content: [{ type: "output_text", text: "hello", annotations: [] }] }],
      usage: { input_tokens: 5, input_tokens_details: { cached_tokens: 2 }, output_tokens: 3, total_tokens: 8 },
    });
    expect(r.id).toMatch(/^resp_[0-9a-f]{24}$/);
  });

  it("a line cut at max_output_tokens is incomplete, with the reason", () => {
    const r = buildResponseObject({ model: "m", text: "he", finishReason: "length", inputTokens: 5, cachedTokens: 0, outputTokens: 2 }, request({}));
    expect(r).toMatchObject({ status: "incomplete", completed_at: null, incomplete_details: { reason: "max_output_tokens" }, output: [{ status: "incomplete" }] });
  });
});
