// PromptPool against the real tokenizer of tiny-gemma (Gemma's vocabulary): the same
// token ids as the main thread makes, and the event loop stays free while threads
// tokenize long prompts.
import { Tokenizer } from "@batchgen/engine/tokenizer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PromptPool } from "../src/prompt-pool.js";
import { promptTokens } from "../src/prompt-tokens.js";
import { tinyGemmaDir } from "../../../test/support/tiny-model.js";

let modelDir: string;
let tokenizer: Tokenizer;
let pool: PromptPool;

beforeAll(async () => {
  modelDir = await tinyGemmaDir();
  tokenizer = await Tokenizer.fromDir(modelDir);
  pool = await PromptPool.start({ modelDir, maxModelLen: 1 << 20 }, 2);
});

afterAll(async () => {
  await pool?.close();
});

describe("PromptPool", () => {
  it("makes the same prompt token ids as the main thread", async () => {
    const requests = [
      { kind: "chat" as const, messages: [{ role: "user", content: "Hello there, how are you?" }] },
      { kind: "completion" as const, prompt: "Once upon a time" },
      { kind: "completion" as const, promptTokenIds: [5, 6, 7] },
    ];
    for (const r of requests) expect(await pool.tokens(r)).toEqual(promptTokens(r, tokenizer));
  });

  it("fails a chat the template rejects as invalid_request, as the main thread does", async () => {
    await expect(pool.tokens({ kind: "chat", messages: [{ role: "assistant", content: "hi" }] })).rejects.toMatchObject({
      name: "LineFailure",
      code: "invalid_request",
    });
  });

  it("keeps the event loop free while long prompts are tokenized", async () => {
    const text = "the quick brown fox jumps over the lazy dog. ".repeat(1_500); // ~67 KB
    // What one such prompt costs on the main thread: the gap it would leave in the loop.
    const inlineStarted = Date.now();
    promptTokens({ kind: "completion", prompt: text }, tokenizer);
    const inlineMs = Date.now() - inlineStarted;
    let longestGapMs = 0;
    let last = Date.now();
    const timer = setInterval(() => {
      const now = Date.now();
      longestGapMs = Math.max(longestGapMs, now - last);
      last = now;
    }, 10);
    const results = await Promise.all(Array.from({ length: 4 }, (_, i) => pool.tokens({ kind: "completion", prompt: `${i} ${text}` })));
    clearInterval(timer);
    for (const ids of results) expect(ids.length).toBeGreaterThan(10_000);
    // Each prompt is real work (about half a second on an idle 2-core box)...
    expect(inlineMs).toBeGreaterThan(100);
    // ...and the loop never waited anywhere near that long. Relative to inlineMs, so a
    // busy box (which slows both) does not make it fail; 150 ms is the floor.
    expect(longestGapMs, `longest gap ${longestGapMs} ms; one prompt inline ${inlineMs} ms`).toBeLessThan(Math.max(150, inlineMs / 2));
  });
});
