import { describe, expect, it } from "vitest";
import { CharTokenizerDouble } from "../test/support/char-tokenizer-double.js";
import { InstantEngineDouble } from "./instant-engine-double.js";
import { LineRunner, promptOrder } from "./line-runner.js";

const setup = (opts: { maxModelLen?: number; completionTokens?: number; words?: string[] } = {}) => {
  const engine = new InstantEngineDouble({ maxModelLen: opts.maxModelLen ?? 200, completionTokens: opts.completionTokens ?? 64, recordRequests: true });
  const tokenizer = new CharTokenizerDouble(opts.words);
  return { engine, tokenizer, runner: new LineRunner({ engine, tokenizer, modelName: "tiny-gemma" }) };
};

describe("LineRunner", () => {
  it("renders the chat template with the generation prompt and answers with a chat.completion", async () => {
    const { engine, tokenizer, runner } = setup({ completionTokens: 5 });
    const body = { model: "tiny-gemma", messages: [{ role: "system", content: "be brief" }, { role: "user", content: "hi" }], max_tokens: 5, temperature: 0 };
    const out = await runner.run("l1", "/v1/chat/completions", JSON.stringify(body));
    const prompt = tokenizer.encode("<bos>[system]be brief\n[user]hi\n[assistant]", { addSpecialTokens: false });
    expect(engine.requests[0]).toMatchObject({ id: "l1", prompt, maxTokens: 5, temperature: 0 });
    expect(prompt.filter((t) => t === 2)).toHaveLength(1); // the template's <bos>, not a second one
    expect(out.kind).toBe("response");
    if (out.kind !== "response") return;
    const parsed = JSON.parse(out.bodyJson);
    // The double echoes the prompt: its first 5 tokens minus <bos> decode to "[sys".
    expect(parsed).toMatchObject({
      object: "chat.completion",
      model: "tiny-gemma",
      choices: [{ message: { role: "assistant", content: "[sys" }, finish_reason: "length" }],
      usage: { prompt_tokens: prompt.length, completion_tokens: 5, total_tokens: prompt.length + 5 },
    });
    expect(out.promptTokens).toBe(prompt.length);
    expect(out.completionTokens).toBe(5);
  });

  it("tokenizes a completion prompt with BOS and answers with a text_completion", async () => {
    const { engine, tokenizer, runner } = setup({ completionTokens: 4 });
    const out = await runner.run("l2", "/v1/completions", JSON.stringify({ model: "tiny-gemma", prompt: "abcdef", max_tokens: 10, seed: 7 }));
    expect(engine.requests[0]).toMatchObject({ prompt: tokenizer.encode("abcdef"), seed: 7, maxTokens: 10 });
    expect(out.kind).toBe("response");
    if (out.kind !== "response") return;
    expect(JSON.parse(out.bodyJson)).toMatchObject({ object: "text_completion", choices: [{ text: "abc", finish_reason: "stop" }] });
  });

  it("takes a prompt of token ids as is", async () => {
    const { engine, runner } = setup();
    await runner.run("l3", "/v1/completions", JSON.stringify({ model: "m", prompt: [20, 21, 22], max_tokens: 2 }));
    expect(engine.requests[0]!.prompt).toEqual([20, 21, 22]);
  });

  it("runs n choices as n engine requests with seeds seed + i and counts every choice in usage", async () => {
    const { engine, runner } = setup({ completionTokens: 3 });
    const body = { model: "m", prompt: [20, 21, 22, 23], max_tokens: 3, seed: 40, n: 3, presence_penalty: 0.5, logit_bias: { "9": 2 } };
    const out = await runner.run("l9", "/v1/completions", JSON.stringify(body));
    expect(engine.requests.map((r) => [r.id, r.seed])).toEqual([["l9", 40], ["l9/1", 41n], ["l9/2", 42n]]);
    expect(engine.requests[2]).toMatchObject({ presencePenalty: 0.5, logitBias: new Map([[9, 2]]) });
    if (out.kind !== "response") throw new Error("expected a response");
    const parsed = JSON.parse(out.bodyJson) as { choices: Array<{ index: number }>; usage: { completion_tokens: number } };
    expect(parsed.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(out.completionTokens).toBe(9);
    expect(parsed.usage.completion_tokens).toBe(9);
  });

  it("runs past the model's EOS when the line asks for ignore_eos", async () => {
    const { runner } = setup();
    // The double echoes the prompt; token 1 is its EOS.
    const line = (extra: Record<string, unknown>) => JSON.stringify({ model: "m", prompt: [20, 1, 22], max_tokens: 5, ...extra });
    const stopped = await runner.run("l3a", "/v1/completions", line({}));
    const ignored = await runner.run("l3b", "/v1/completions", line({ ignore_eos: true }));
    if (stopped.kind !== "response" || ignored.kind !== "response") throw new Error("expected two responses");
    expect(stopped.completionTokens).toBe(2);
    expect(JSON.parse(stopped.bodyJson).choices[0].finish_reason).toBe("stop");
    expect(ignored.completionTokens).toBe(5);
    expect(JSON.parse(ignored.bodyJson).choices[0].finish_reason).toBe("length");
  });

  it("stops at a multi-token stop string in the text and counts the tokens through it", async () => {
    const { runner } = setup({ completionTokens: 64 });
    // The double echoes the prompt, so the "generated" text is "<bos>one, two, three..." minus <bos>.
    const out = await runner.run("l4", "/v1/completions", JSON.stringify({ model: "m", prompt: "one, two, three", stop: [", t"], max_tokens: 30 }));
    expect(out.kind).toBe("response");
    if (out.kind !== "response") return;
    const body = JSON.parse(out.bodyJson);
    expect(body.choices[0]).toMatchObject({ text: "one", finish_reason: "stop" });
    expect(out.completionTokens).toBe(1 + "one, t".length); // <bos> + text through the stop string
    expect(body.usage.completion_tokens).toBe(out.completionTokens);
  });

  it("makes a single-token stop string an engine stop token", async () => {
    const { engine, tokenizer, runner } = setup({ words: ["END"] });
    const out = await runner.run("l5", "/v1/completions", JSON.stringify({ model: "m", prompt: "ab END cd", stop: "END", max_tokens: 30 }));
    expect(engine.requests[0]!.stopTokenIds).toEqual(tokenizer.encode("END", { addSpecialTokens: false }));
    if (out.kind !== "response") throw new Error(`expected a response, got ${out.kind}`);
    expect(JSON.parse(out.bodyJson).choices[0]).toMatchObject({ text: "ab ", finish_reason: "stop" });
  });

  it("fails a prompt longer than the context with context_length_exceeded, without running it", async () => {
    const { engine, runner } = setup({ maxModelLen: 10 });
    const out = await runner.run("l6", "/v1/completions", JSON.stringify({ model: "m", prompt: "x".repeat(20) }));
    expect(out).toMatchObject({ kind: "error", code: "context_length_exceeded", promptTokens: 21 });
    expect(engine.requests).toHaveLength(0);
  });

  it("fails a body it cannot parse, or a chat the template rejects, as invalid_request", async () => {
    const { runner } = setup();
    expect(await runner.run("a", "/v1/completions", "{not json")).toMatchObject({ kind: "error", code: "invalid_request" });
    expect(await runner.run("b", "/v1/completions", JSON.stringify({ model: "m", prompt: "x", n: 500 }))).toMatchObject({ kind: "error", code: "invalid_request" });
    const out = await runner.run("c", "/v1/chat/completions", JSON.stringify({ model: "m", messages: [{ role: "assistant", content: "x" }] }));
    expect(out).toMatchObject({ kind: "error", code: "invalid_request" });
    expect(out.kind === "error" && out.message).toMatch(/chat template rejected the messages: conversation must start/);
  });

  it("reports an aborted request as aborted, with no result", async () => {
    const engine = new InstantEngineDouble({ delayMs: 10_000 });
    const runner = new LineRunner({ engine, tokenizer: new CharTokenizerDouble(), modelName: "m" });
    // Aborted while its prompt is made: it never reaches the engine.
    const early = runner.run("l7", "/v1/completions", JSON.stringify({ model: "m", prompt: "x", max_tokens: 3 }));
    runner.abort("l7");
    expect(await early).toEqual({ kind: "aborted" });
    expect(() => engine.abort("l7")).toThrow(/no request/);
    // Aborted in the engine.
    const late = runner.run("l8", "/v1/completions", JSON.stringify({ model: "m", prompt: "x", max_tokens: 3 }));
    await new Promise((r) => setTimeout(r, 20));
    runner.abort("l8");
    expect(await late).toEqual({ kind: "aborted" });
    // Aborted in the engine with n > 1: every choice stops, none runs out its delay.
    const started = Date.now();
    const many = runner.run("l10", "/v1/completions", JSON.stringify({ model: "m", prompt: "x", max_tokens: 3, n: 3 }));
    await new Promise((r) => setTimeout(r, 20));
    runner.abort("l10");
    expect(await many).toEqual({ kind: "aborted" });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("refuses a prompt that cannot fit the context before tokenizing it", async () => {
    const engine = new InstantEngineDouble();
    const tokenizer = Object.assign(new CharTokenizerDouble(), { maxTokenChars: 2 });
    const calls: string[] = [];
    const encode = tokenizer.encode.bind(tokenizer);
    tokenizer.encode = (text, opts) => (calls.push(text), encode(text, opts));
    const runner = new LineRunner({ engine, tokenizer, modelName: "m" });
    const huge = "y".repeat(engine.model.maxModelLen * 2 * 4);
    const out = await runner.run("l9", "/v1/completions", JSON.stringify({ model: "m", prompt: huge, max_tokens: 3 }));
    expect(out).toMatchObject({ kind: "error", code: "context_length_exceeded" });
    expect(out.kind === "error" && out.message).toMatch(/at least \d+ tokens/);
    expect(calls).toHaveLength(0);
  });

  it("orders a lease's lines by prompt so lines sharing a prefix reach the engine together", async () => {
    const { engine, runner } = setup();
    const line = (prompt: number[]) => JSON.stringify({ model: "m", prompt, max_tokens: 2 });
    const bodies = [line([30, 31, 5]), line([40, 41, 1]), "not json", line([30, 31, 2]), line([40, 41, 0]), line([30])];
    const prepared = await Promise.all(bodies.map((b, i) => runner.prepare(`x${i}`, "/v1/completions", b)));
    const order = promptOrder(prepared);
    // The failed line first, then [30] < [30,31,2] < [30,31,5] < [40,41,0] < [40,41,1].
    expect(order).toEqual([2, 5, 3, 0, 4, 1]);
    for (const i of order) await runner.execute(`x${i}`, prepared[i]!);
    expect(engine.requests.map((r) => r.id)).toEqual(["x5", "x3", "x0", "x4", "x1"]);
    const failed = await runner.execute("x2", prepared[2]!);
    expect(failed).toMatchObject({ kind: "error", code: "invalid_request" });
  });
});
