// Structured output through the engine's TypeScript API on random-weight models
// (CPU backend): 20 strict-mode schemas x 25 sampled lines on a byte-level BPE
// vocabulary, every line decoded by @huggingface/tokenizers, parsed and checked by
// an independent validator (ajv, JSON Schema 2020-12); a SentencePiece (Gemma)
// vocabulary; json_object; schema errors at submit.
import { readFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import * as ajvModule from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { Engine, InvalidArgumentError } from "../ts/index.js";
import { makeModel } from "../ts/make-model.js";
import { Tokenizer } from "../ts/tokenizer.js";
import { writeByteLevelTokenizer } from "./byte-level-tokenizer.js";
import { STRICT_SCHEMAS } from "./json-schemas.js";

type AjvClass = new (opts: object) => { compile(schema: object): ((data: unknown) => boolean) & { errors?: unknown } };
const Ajv2020 = ((ajvModule as unknown as { default: { default?: AjvClass } & AjvClass }).default.default ??
  (ajvModule as unknown as { default: AjvClass }).default) as AjvClass;

let root: string;
let modelDir: string;
let engine: Engine;
let tokenizer: Tokenizer;

function lcg(seed: number): (n: number) => number {
  let x = seed >>> 0;
  return (n) => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % n;
  };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "bg-structured-"));
  modelDir = join(root, "llama");
  await makeModel({ dir: modelDir, preset: "tiny-llama", seed: 5 });
  const config = JSON.parse(await readFile(join(modelDir, "config.json"), "utf8")) as { bos_token_id: number; eos_token_id: number };
  await writeByteLevelTokenizer(modelDir, 1000, { "<s>": config.bos_token_id, "</s>": config.eos_token_id });
  tokenizer = await Tokenizer.fromDir(modelDir);
  // All 500 lines in one batch: the engine's paths for many grammar rows (shared masks,
  // accepts on its mask threads from 256 rows) run here too.
  engine = await Engine.load({ modelDir, threads: 2, kvCacheBlocks: 10000, maxModelLen: 512, maxSeqs: 512 });
});

afterAll(async () => {
  await engine?.close();
  await rm(root, { recursive: true, force: true });
});

describe("structured output", () => {
  it("500 sampled lines over 20 strict schemas all parse and validate", async () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const rnd = lcg(11);
    const jobs = STRICT_SCHEMAS.flatMap(({ name, schema }, s) =>
      Array.from({ length: 25 }, (_, i) => ({
        name,
        schema,
        request: engine.generate({
          id: `${name}-${i}`,
          prompt: Array.from({ length: 1 + rnd(40) }, () => 3 + rnd(990)),
          temperature: [1, 0.7, 1.3, 0][i % 4],
          topP: i % 5 === 0 ? 0.9 : 1,
          seed: 1000 * s + i,
          maxTokens: 160 + rnd(60),
          responseFormat: { type: "json_schema", schema },
        }),
      })),
    );
    expect(jobs.length).toBe(500);
    const validators = new Map(STRICT_SCHEMAS.map(({ name, schema }) => [name, ajv.compile(schema)]));
    const bad: string[] = [];
    let ended = 0;
    for (const job of jobs) {
      const result = await job.request;
      expect(result.finishReason === "stop" || result.finishReason === "length").toBe(true);
      if (result.finishReason === "stop") ++ended;
      const text = tokenizer.decode(result.tokens, { skipSpecialTokens: true });
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        bad.push(`${job.name}: not JSON: ${text}`);
        continue;
      }
      const validate = validators.get(job.name)!;
      if (!validate(value)) bad.push(`${job.name}: ${JSON.stringify(validate.errors)}: ${text}`);
    }
    expect(bad).toEqual([]);
    // Most lines close their value and end on EOS before max_tokens.
    expect(ended).toBeGreaterThan(250);
    const stats = engine.stats();
    expect(stats.grammarMasks).toBeGreaterThan(10000);
    // Rows in one grammar state share a mask: fewer built than applied, and some host time spent.
    expect(stats.grammarDistinctMasks).toBeGreaterThan(0);
    expect(stats.grammarDistinctMasks).toBeLessThan(stats.grammarMasks);
    expect(stats.grammarHostMs).toBeGreaterThan(0);
  });

  it("json_object gives a JSON object", async () => {
    for (let i = 0; i < 20; ++i) {
      const r = await engine.generate({ prompt: [5, 6, 7 + i], seed: i, maxTokens: 64, responseFormat: { type: "json_object" } });
      const value = JSON.parse(tokenizer.decode(r.tokens, { skipSpecialTokens: true })) as unknown;
      expect(typeof value === "object" && value !== null && !Array.isArray(value)).toBe(true);
    }
  });

  it("a schema outside the subset is refused at submit, naming the keyword", async () => {
    const bad = { type: "object", properties: { a: { type: "string", pattern: "^x" } }, required: ["a"] };
    await expect(engine.generate({ prompt: [5], responseFormat: { type: "json_schema", schema: bad } })).rejects.toThrow(
      InvalidArgumentError,
    );
    await expect(engine.generate({ prompt: [5], responseFormat: { type: "json_schema", schema: bad } })).rejects.toThrow(
      /#\/properties\/a: keyword 'pattern'/,
    );
  });

  it("a SentencePiece vocabulary (Gemma, byte fallback) gives valid JSON too", async () => {
    const dir = join(root, "gemma");
    await makeModel({ dir, preset: "tiny-gemma", seed: 3 });
    const gemma = await Engine.load({ modelDir: dir, threads: 2, kvCacheBlocks: 256, maxModelLen: 256 });
    const gemmaTokenizer = await Tokenizer.fromDir(dir);
    const ajv = new Ajv2020({ strict: false });
    try {
      for (const { schema } of [STRICT_SCHEMAS[2]!, STRICT_SCHEMAS[5]!]) {
        const validate = ajv.compile(schema);
        const results = await Promise.all(
          [0, 1, 2].map((i) =>
            gemma.generate({ prompt: [2, 100 + i], seed: i, maxTokens: 120, responseFormat: { type: "json_schema", schema } }),
          ),
        );
        for (const r of results) {
          const text = gemmaTokenizer.decode(r.tokens, { skipSpecialTokens: true });
          expect(validate(JSON.parse(text))).toBe(true);
        }
      }
    } finally {
      await gemma.close();
    }
  });
});
