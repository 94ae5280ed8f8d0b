// The engine runtime through its TypeScript API on a random-weight tiny Llama
// (CPU backend): batch invariance, KV pressure with preemption, bad input,
// abort, stats and close. Needs the native addon (pnpm --filter @batchgen/engine build).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  Engine,
  EngineError,
  InvalidArgumentError,
  ModelLoadError,
  NotFoundError,
  type EngineLoadOptions,
  type GenerateRequest,
  type GenerateResult,
} from "../ts/index.js";
import { makeModel } from "../ts/make-model.js";

let root: string;
let modelDir: string;
const engines: Engine[] = [];

async function open(options: Partial<EngineLoadOptions> = {}): Promise<Engine> {
  const engine = await Engine.load({ modelDir, threads: 2, kvCacheBlocks: 1024, maxModelLen: 512, ...options });
  engines.push(engine);
  return engine;
}

// A small deterministic generator so the workload is the same on every run.
function lcg(seed: number): (n: number) => number {
  let x = seed >>> 0;
  return (n) => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % n;
  };
}

// 64 requests: prompt lengths 1..120, greedy and every seeded sampling mode.
function mixedRequests(count: number, seed: number): GenerateRequest[] {
  const rnd = lcg(seed);
  const modes: Array<Partial<GenerateRequest>> = [
    { temperature: 0 },
    { temperature: 0.8 },
    { temperature: 1.0, topK: 20 },
    { temperature: 0.9, topP: 0.9 },
    { temperature: 1.2, minP: 0.05 },
    { temperature: 0.7, topK: 50, topP: 0.95, minP: 0.02 },
  ];
  return Array.from({ length: count }, (_, i) => {
    const len = 1 + rnd(i % 4 === 0 ? 120 : 30);
    return {
      id: `req-${i}`,
      prompt: Array.from({ length: len }, () => 3 + rnd(990)),
      maxTokens: 4 + rnd(28),
      seed: i % 3 === 0 ? undefined : 1000 + i,  // some derive their seed from the id
      ignoreEos: i % 2 === 0,
      ...modes[i % modes.length],
    };
  });
}

function byId(results: GenerateResult[]): Map<string, GenerateResult> {
  return new Map(results.map((r) => [r.id, r]));
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "bg-runtime-"));
  modelDir = join(root, "tiny-llama");
  await makeModel({ dir: modelDir, preset: "tiny-llama", seed: 7 });
});

afterAll(async () => {
  await Promise.all(engines.map((e) => e.close()));
  await rm(root, { recursive: true, force: true });
});

describe("batch invariance and KV pressure", () => {
  const requests = mixedRequests(64, 42);
  let together: Map<string, GenerateResult>;

  it("64 mixed requests run together give exactly the tokens each gives alone", async () => {
    // A 256-token budget forces chunked prefill and mixed prefill/decode steps.
    const engine = await open({ maxBatchTokens: 256, maxSeqs: 64 });
    together = byId(await Promise.all(requests.map((r) => engine.generate(r))));
    const alone = new Map<string, GenerateResult>();
    for (const r of requests) alone.set(r.id!, await engine.generate(r));
    let mixedSteps = 0;
    for (const r of requests) {
      const a = alone.get(r.id!)!;
      const t = together.get(r.id!)!;
      expect(t.tokens, r.id).toEqual(a.tokens);
      expect(t.finishReason).toBe(a.finishReason);
      expect(t.completionTokens).toBe(t.tokens.length);
      expect(t.promptTokens).toBe(r.prompt.length);
      if (t.tokens.length > 0) mixedSteps++;
    }
    expect(mixedSteps).toBe(64);
    // Sampling really sampled: the seeded requests do not all follow the greedy path.
    const greedy = await engine.generate({ ...requests[1]!, id: "greedy-twin", temperature: 0 });
    expect(greedy.tokens).not.toEqual(together.get("req-1")!.tokens);
    expect(engine.stats().kvBlocksUsed).toBe(0);
  });

  it("a KV cache too small for all requests preempts, and every request still gets the same tokens", async () => {
    // 40 blocks of 16 = 640 slots, while the 64 requests together need ~3000.
    const engine = await open({ kvCacheBlocks: 40, maxModelLen: 160, maxBatchTokens: 256, maxSeqs: 64 });
    const results = await Promise.all(requests.map((r) => engine.generate(r)));
    for (const r of results) {
      expect(r.tokens, r.id).toEqual(together.get(r.id)!.tokens);
      expect(r.finishReason).toBe(together.get(r.id)!.finishReason);
    }
    const stats = engine.stats();
    expect(stats.preemptions).toBeGreaterThan(0);
    expect(results.reduce((n, r) => n + r.preemptions, 0)).toBe(stats.preemptions);
    expect(stats.kvBlocksUsed).toBe(0);
    expect(stats.kvBlocksFree).toBe(40);
  });
});

describe("batch invariance on a Gemma (MQA, 256k vocabulary)", () => {
  it("16 mixed requests run together give exactly the tokens each gives alone", async () => {
    const gemmaDir = join(root, "tiny-gemma");
    await makeModel({ dir: gemmaDir, preset: "tiny-gemma", seed: 3 });
    const engine = await Engine.load({ modelDir: gemmaDir, threads: 2, kvCacheBlocks: 256, maxModelLen: 256, maxBatchTokens: 64 });
    engines.push(engine);
    const vocab = engine.model.vocabSize;
    const requests = mixedRequests(16, 9).map((r, i) => ({
      ...r,
      prompt: Array.from(r.prompt, (t) => (t * 7919 + i) % vocab),
      maxTokens: Math.min(r.maxTokens ?? 16, 10),
    }));
    const together = await Promise.all(requests.map((r) => engine.generate(r)));
    for (const [i, r] of requests.entries()) {
      const alone = await engine.generate(r);
      expect(together[i]!.tokens, r.id).toEqual(alone.tokens);
    }
  });
});

describe("requests", () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await open({ maxModelLen: 64 });
  });

  it("rejects bad input with the right error class and keeps working", async () => {
    const bad: Array<[GenerateRequest, string]> = [
      [{ prompt: [] }, "prompt"],
      [{ prompt: [1, 2], temperature: -1 }, "temperature"],
      [{ prompt: [1, 2], temperature: Number.NaN }, "temperature"],
      [{ prompt: [1, 2], topP: 0 }, "topP"],
      [{ prompt: [1, 2], topP: 1.5 }, "topP"],
      [{ prompt: [1, 2], minP: 2 }, "minP"],
      [{ prompt: [1, 2], topK: -3 }, "topK"],
      [{ prompt: [1, 2], maxTokens: 0 }, "maxTokens"],
      [{ prompt: [1, 2.5] }, "prompt[1]"],
      [{ prompt: [1, 1000] }, "outside the vocabulary"],
      [{ prompt: [-4] }, "outside the vocabulary"],
      [{ prompt: new Array(64).fill(5) }, "context"],
      [{ prompt: [1], stopTokenIds: [5000] }, "stop_token_ids"],
    ];
    for (const [request, text] of bad) {
      const error = await engine.generate(request).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, text).toBeInstanceOf(InvalidArgumentError);
      expect((error as EngineError).code).toBe("invalid_argument");
      expect((error as Error).message).toContain(text);
    }
    expect(() => engine.abort("no-such-request")).toThrow(NotFoundError);
    // A prompt of exactly maxModelLen - 1 tokens still runs (one token of room).
    const edge = await engine.generate({ prompt: new Array(63).fill(5), maxTokens: 10, temperature: 0 });
    expect(edge.finishReason).toBe("length");
    expect(edge.tokens).toHaveLength(1);
    const ok = await engine.generate({ prompt: [1, 2, 3], maxTokens: 3, temperature: 0 });
    expect(ok.tokens).toHaveLength(3);
  });

  it("rejects a duplicate live id", async () => {
    const first = engine.generate({ id: "dup", prompt: [1, 2], maxTokens: 50, ignoreEos: true });
    await expect(engine.generate({ id: "dup", prompt: [1, 2] })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect((await first).finishReason).toBe("length");
    // Free again once finished.
    expect((await engine.generate({ id: "dup", prompt: [1, 2], maxTokens: 1 })).tokens).toHaveLength(1);
  });

  it("stops on stop ids, EOS and the context length", async () => {
    const free = await engine.generate({ prompt: [4, 5, 6], maxTokens: 20, temperature: 0, ignoreEos: true });
    const stopAt = free.tokens[5]!;
    const firstIndex = free.tokens.indexOf(stopAt);
    const stopped = await engine.generate({ prompt: [4, 5, 6], maxTokens: 20, temperature: 0, stopTokenIds: [stopAt] });
    expect(stopped.finishReason).toBe("stop");
    expect(stopped.tokens).toEqual(free.tokens.slice(0, firstIndex + 1));
    // The context (64) caps a generous maxTokens.
    const long = await engine.generate({ prompt: new Array(60).fill(9), maxTokens: 1000, ignoreEos: true });
    expect(long.finishReason).toBe("length");
    expect(long.tokens).toHaveLength(4);
    // EOS (id 2) stops a request unless ignoreEos.
    for (let seed = 0; seed < 200; seed++) {
      const r = await engine.generate({ prompt: [7], maxTokens: 60, temperature: 5, seed });
      if (r.finishReason === "stop") {
        expect(r.tokens.at(-1)).toBe(2);
        return;
      }
      expect(r.tokens).not.toContain(2);
    }
    throw new Error("no sampled request ever produced EOS");
  });

  it("promptLogits' last row picks the first greedy token", async () => {
    const prompt = [11, 22, 33, 44, 55];
    const logits = await engine.promptLogits(prompt);
    const vocab = engine.model.vocabSize;
    expect(logits).toHaveLength(prompt.length * vocab);
    const last = logits.subarray((prompt.length - 1) * vocab);
    let best = 0;
    for (let i = 1; i < vocab; i++) if (last[i]! > last[best]!) best = i;
    const r = await engine.generate({ prompt, maxTokens: 1, temperature: 0 });
    expect(r.tokens).toEqual([best]);
    await expect(engine.promptLogits([])).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});

describe("abort, stats and close", () => {
  it("aborting a live request resolves it with finishReason abort", async () => {
    // Room for 30000 tokens: far more than can run before the abort lands.
    const engine = await open({ maxModelLen: 32768, kvCacheBlocks: 2100 });
    const queued = engine.generate({ id: "queued", prompt: [1, 2, 3], maxTokens: 30000, ignoreEos: true });
    engine.abort("queued");  // before it ever ran
    const q = await queued;
    expect(q.finishReason).toBe("abort");

    const running = engine.generate({ id: "running", prompt: [1, 2, 3], maxTokens: 30000, ignoreEos: true });
    const before = engine.stats();
    while (engine.stats().generatedTokens < before.generatedTokens + 5) {
      await new Promise((r) => setTimeout(r, 1));
    }
    const mid = engine.stats();
    expect(mid.running).toBe(1);
    expect(mid.kvBlocksUsed).toBeGreaterThan(0);
    engine.abort("running");
    const r = await running;
    expect(r.finishReason).toBe("abort");
    expect(r.tokens.length).toBeGreaterThan(0);
    expect(r.tokens.length).toBeLessThan(30000);
    expect(() => engine.abort("running")).toThrow(NotFoundError);
    expect(engine.stats().kvBlocksUsed).toBe(0);
  });

  it("stats move with the work", async () => {
    const engine = await open();
    const s0 = engine.stats();
    expect(s0).toMatchObject({ running: 0, waiting: 0, steps: 0, generatedTokens: 0, kvBlocksTotal: 1024, kvBlocksUsed: 0 });
    await Promise.all([
      engine.generate({ prompt: new Array(30).fill(3), maxTokens: 5, ignoreEos: true }),
      engine.generate({ prompt: new Array(10).fill(4), maxTokens: 7, ignoreEos: true }),
    ]);
    const s1 = engine.stats();
    expect(s1.generatedTokens).toBe(12);
    expect(s1.promptTokensProcessed).toBe(40);
    expect(s1.steps).toBeGreaterThanOrEqual(7);
    expect(s1.lastStepMs).toBeGreaterThan(0);
    expect(s1.kvBlocksFree).toBe(1024);
  });

  it("close() resolves pending requests with abort and refuses new work", async () => {
    const engine = await open({ maxModelLen: 32768, kvCacheBlocks: 2100 });
    const pending = Array.from({ length: 5 }, (_, i) =>
      engine.generate({ id: `c${i}`, prompt: [1, 2, 3 + i], maxTokens: 30000, ignoreEos: true }),
    );
    await engine.close();
    const results = await Promise.all(pending);
    for (const r of results) expect(r.finishReason).toBe("abort");
    await expect(engine.generate({ prompt: [1] })).rejects.toMatchObject({ code: "closed" });
    await engine.close();  // idempotent
  });

  it("load errors map to their classes", async () => {
    await expect(Engine.load({ modelDir: join(root, "missing") })).rejects.toBeInstanceOf(ModelLoadError);
    await expect(Engine.load({ modelDir, blockSize: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(Engine.load({ modelDir, kvCacheBlocks: 4, maxModelLen: 512 })).rejects.toThrow(/KV cache holds 64 tokens/);
  });
});
