// Automatic prefix caching on the CPU backend, deterministic mode: every request
// gives the same tokens (greedy and seeded) with caching on as with it off, and
// the cached-token counts and the KV blocks in use (n = 4 choices of one line) are
// the ones the block layout predicts. Needs the native addon
// (pnpm --filter @batchgen/engine build).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { Engine, type EngineLoadOptions, type EngineStats, type GenerateRequest, type GenerateResult } from "../ts/index.js";
import { makeModel } from "../ts/make-model.js";

let root: string;
let modelDir: string;
const engines: Engine[] = [];
const BLOCK = 16;

async function open(options: Partial<EngineLoadOptions>): Promise<Engine> {
  const engine = await Engine.load({
    modelDir,
    threads: 2,
    kvCacheBlocks: 512,
    maxModelLen: 512,
    blockSize: BLOCK,
    deterministic: true,
    ...options,
  });
  engines.push(engine);
  return engine;
}

function lcg(seed: number): (n: number) => number {
  let x = seed >>> 0;
  return (n) => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % n;
  };
}

function tokens(count: number, seed: number): number[] {
  const rnd = lcg(seed);
  return Array.from({ length: count }, () => 3 + rnd(990));
}

// Greedy and seeded sampling alternate.
function request(id: string, prompt: number[], i: number, maxTokens = 8): GenerateRequest {
  const mode = i % 2 === 0 ? { temperature: 0 } : { temperature: 0.9, topK: 40, seed: 100 + i };
  return { id, prompt, maxTokens, ignoreEos: true, ...mode };
}

/** Runs the requests on an engine with caching off and on (both submitted at once). */
async function onAndOff(
  requests: GenerateRequest[],
  options: Partial<EngineLoadOptions> = {},
): Promise<{ on: Map<string, GenerateResult>; off: Map<string, GenerateResult>; engine: Engine }> {
  const offEngine = await open({ ...options, enablePrefixCaching: false });
  const off = new Map((await Promise.all(requests.map((r) => offEngine.generate(r)))).map((r) => [r.id, r]));
  const engine = await open({ ...options, enablePrefixCaching: true });
  const on = new Map((await Promise.all(requests.map((r) => engine.generate(r)))).map((r) => [r.id, r]));
  for (const r of requests) {
    expect(on.get(r.id!)!.tokens, r.id).toEqual(off.get(r.id!)!.tokens);
    expect(on.get(r.id!)!.finishReason).toBe(off.get(r.id!)!.finishReason);
    expect(off.get(r.id!)!.cachedTokens).toBe(0);
  }
  expect(offEngine.stats().promptTokensCached).toBe(0);
  return { on, off, engine };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "bg-prefix-"));
  modelDir = join(root, "tiny-llama");
  await makeModel({ dir: modelDir, preset: "tiny-llama", seed: 11 });
});

afterAll(async () => {
  await Promise.all(engines.map((e) => e.close()));
  await rm(root, { recursive: true, force: true });
});

describe("prefix caching: same tokens with it on and off", () => {
  it("a shared prefix that ends mid-block: the full blocks are served from the cache", async () => {
    // 40 shared tokens = 2 full blocks + 8; then 5..20 own tokens.
    const prefix = tokens(40, 1);
    const reqs = Array.from({ length: 6 }, (_, i) => request(`mid-${i}`, [...prefix, ...tokens(5 + 3 * i, 50 + i)], i));
    const { on, engine } = await onAndOff(reqs);
    // The first computes everything; the twins wait for its blocks, then share 2.
    expect(on.get("mid-0")!.cachedTokens).toBe(0);
    for (let i = 1; i < 6; i++) expect(on.get(`mid-${i}`)!.cachedTokens).toBe(2 * BLOCK);
    const s = engine.stats();
    const promptTotal = reqs.reduce((n, r) => n + r.prompt.length, 0);
    expect(s.promptTokensCached).toBe(5 * 2 * BLOCK);
    expect(s.promptTokensProcessed).toBe(promptTotal - 5 * 2 * BLOCK);
    expect(s.kvBlocksUsed).toBe(0);
    expect(s.kvBlocksCached).toBeGreaterThan(0);
    expect(s.kvBlocksEvicted).toBe(0); // a 512-block cache: no pressure
  });

  it("two prompts that diverge mid-block share only the blocks before it", async () => {
    const common = tokens(24, 2);  // block 0 full, block 1 diverges at its 9th token
    const a = [...common, ...tokens(30, 3)];
    const b = [...common, ...tokens(30, 4)];
    const { on } = await onAndOff([request("a", a, 0, 12), request("b", b, 1, 12)]);
    expect(on.get("a")!.cachedTokens).toBe(0);
    expect(on.get("b")!.cachedTokens).toBe(BLOCK);
  });

  it("identical prompts submitted together (n > 1) prefill once, the last token excepted", async () => {
    const prompt = tokens(70, 5);  // 4 full blocks + 6
    const reqs = Array.from({ length: 4 }, (_, i) => request(`n-${i}`, prompt, i, 10));
    const { on, engine } = await onAndOff(reqs);
    for (let i = 1; i < 4; i++) expect(on.get(`n-${i}`)!.cachedTokens).toBe(4 * BLOCK);
    expect(engine.stats().promptTokensProcessed).toBe(70 + 3 * (70 - 4 * BLOCK));
  });

  it("a prefix still being prefilled when its twin arrives is computed once", async () => {
    // A 32-token budget: the 200-token prefix takes the first request 7 steps; the
    // twin, submitted right behind it, waits for its blocks instead of recomputing.
    const prefix = tokens(200, 6);
    const reqs = [request("first", [...prefix, ...tokens(9, 7)], 0), request("twin", [...prefix, ...tokens(17, 8)], 1)];
    const { on, engine } = await onAndOff(reqs, { maxBatchTokens: 32 });
    expect(on.get("twin")!.cachedTokens).toBe(12 * BLOCK);
    expect(engine.stats().promptTokensProcessed).toBe(209 + 217 - 12 * BLOCK);
  });

  it("eviction under memory pressure: outputs unchanged, later lines still hit", async () => {
    // 8 prefixes of 48 tokens (3 blocks), each for 2 consecutive requests, twice over
    // (32 requests); 4 running at once in a 24-block cache. The second of a pair shares
    // its twin's blocks; by the time a prefix comes round again, other prefixes have
    // evicted it and it is computed afresh.
    const prefixes = Array.from({ length: 8 }, (_, p) => tokens(48, 200 + p));
    const reqs = Array.from({ length: 32 }, (_, i) =>
      request(`ev-${i}`, [...prefixes[Math.floor(i / 2) % 8]!, ...tokens(4 + (i % 9), 300 + i)], i, 6 + (i % 5)),
    );
    const { on, engine } = await onAndOff(reqs, { kvCacheBlocks: 24, maxModelLen: 128, maxSeqs: 4 });
    const cached = [...on.values()].reduce((n, r) => n + r.cachedTokens, 0);
    expect(engine.stats().kvBlocksEvicted).toBeGreaterThan(0);
    expect(cached).toBeGreaterThan(0);
    // Without eviction all 24 requests after the first of their prefix would share 3 blocks.
    expect(cached).toBeLessThan(24 * 3 * BLOCK);
    expect(engine.stats().promptTokensCached).toBe(cached);
    expect(engine.stats().kvBlocksFree).toBe(24);
  });

  it("preempting a sequence whose blocks are shared recomputes it to the same tokens", async () => {
    // 10 requests share a 64-token prefix and decode 60 tokens each in 40 blocks:
    // decodes run out of room and sequences holding shared blocks are preempted.
    const prefix = tokens(64, 9);
    const reqs = Array.from({ length: 10 }, (_, i) => request(`pre-${i}`, [...prefix, ...tokens(3 + i, 400 + i)], i, 60));
    const { on, engine } = await onAndOff(reqs, { kvCacheBlocks: 40, maxModelLen: 160, maxSeqs: 10 });
    expect(engine.stats().preemptions).toBeGreaterThan(0);
    expect([...on.values()].some((r) => r.preemptions > 0)).toBe(true);
    expect(engine.stats().kvBlocksUsed).toBe(0);
  });

  it("enablePrefixCaching must be a boolean", async () => {
    await expect(Engine.load({ modelDir, enablePrefixCaching: "yes" as unknown as boolean })).rejects.toThrow(/enablePrefixCaching/);
  });
});

// A line with n = 4 as the worker runs it (line-runner.ts): four requests with the
// same prompt, ids `<id>`, `<id>/1`, ..., choice i seeded seed + i (or, without a
// seed, seeded from its own id). While all four decode, the engine's KV block count
// is the prompt's full blocks once plus each choice's own blocks, where four
// independent requests (caching off) hold the whole prompt four times.
describe("n = 4 choices share the prompt's KV blocks", () => {
  const P = 100;                          // 6 full blocks + 4
  const SHARED = Math.floor((P - 1) / BLOCK);  // full blocks shared (the last token is always computed)
  const TAIL = P - SHARED * BLOCK;        // prompt tokens each choice computes into its own block
  const MAX_TOKENS = 40;

  /** Runs the requests at once; every stats snapshot taken while all of them were running. */
  async function whileLive(engine: Engine, reqs: GenerateRequest[]): Promise<{ results: GenerateResult[]; live: EngineStats[] }> {
    const live: EngineStats[] = [];
    let done = false;
    const all = Promise.all(reqs.map((r) => engine.generate(r))).finally(() => (done = true));
    while (!done) {
      const s = engine.stats();
      if (s.running === reqs.length) live.push(s);
      await new Promise((r) => setImmediate(r));
    }
    return { results: await all, live };
  }

  // Blocks the four hold after a step, G tokens generated in all: a sequence of
  // P + g tokens has K/V slots for P + g - 1, so `perChoice` tokens' worth of own
  // slots each, rounded up to whole blocks (at most one partial block per choice).
  function blockRange(shared: number, perChoice: number, generated: number): [number, number] {
    const exact = shared + (4 * (perChoice - 1) + generated) / BLOCK;
    return [Math.ceil(exact), exact + 4];
  }

  it.each([
    { name: "seeded", seed: 500 },
    { name: "seedless", seed: undefined },
  ])("$name: blocks in use ~ prompt + 4 x generated, and each choice equals its request run alone", async ({ name, seed }) => {
    const prompt = tokens(P, 21);
    const reqs: GenerateRequest[] = [0, 1, 2, 3].map((i) => ({
      id: i === 0 ? name : `${name}/${i}`,
      prompt,
      maxTokens: MAX_TOKENS,
      ignoreEos: true,
      temperature: 0.9,
      topK: 40,
      ...(seed === undefined ? {} : { seed: seed + i }),
    }));
    const promptBlocks = Math.ceil(P / BLOCK);

    const shared = await open({ enablePrefixCaching: true });
    const on = await whileLive(shared, reqs);
    expect(on.live.length).toBeGreaterThan(0);
    for (const s of on.live) {
      const [lo, hi] = blockRange(SHARED, TAIL, s.generatedTokens);
      expect(s.kvBlocksUsed, `${s.generatedTokens} generated`).toBeGreaterThanOrEqual(lo);
      expect(s.kvBlocksUsed, `${s.generatedTokens} generated`).toBeLessThan(hi);
      expect(s.kvBlocksUsed).toBeLessThan(4 * promptBlocks);
    }
    // The prompt prefilled once; choices 1..3 compute only its tail past the shared blocks.
    expect(on.results.map((r) => r.cachedTokens)).toEqual([0, SHARED * BLOCK, SHARED * BLOCK, SHARED * BLOCK]);
    expect(shared.stats().promptTokensProcessed).toBe(P + 3 * TAIL);

    const separate = await open({ enablePrefixCaching: false });
    const off = await whileLive(separate, reqs);
    expect(off.live.length).toBeGreaterThan(0);
    for (const s of off.live) {
      const [lo, hi] = blockRange(0, P, s.generatedTokens);
      expect(s.kvBlocksUsed).toBeGreaterThanOrEqual(Math.max(lo, 4 * promptBlocks));
      expect(s.kvBlocksUsed).toBeLessThan(hi);
    }
    expect(separate.stats().promptTokensProcessed).toBe(4 * P);

    // Each choice alone (same id when its seed derives from the id) gives the same tokens.
    for (const [i, r] of reqs.entries()) {
      const alone = await separate.generate(seed === undefined ? r : { ...r, id: `alone-${i}` });
      expect(alone.tokens, r.id).toHaveLength(MAX_TOKENS);
      expect(on.results[i]!.tokens, r.id).toEqual(alone.tokens);
      expect(off.results[i]!.tokens, r.id).toEqual(alone.tokens);
    }
    // Four different seeds: four different choices.
    expect(new Set(on.results.map((r) => r.tokens.join(","))).size).toBe(4);
  });
});
