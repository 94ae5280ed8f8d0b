import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readEmbeddingModel } from "./embedding-model.js";
import { finishVector } from "./embeddings-body.js";

const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

const T = "sentence_transformers.models.Transformer";
const P = "sentence_transformers.models.Pooling";
const N = "sentence_transformers.models.Normalize";

async function modelDir(modules: unknown, pooling?: Record<string, unknown>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "bg-embed-model-"));
  dirs.push(dir);
  if (modules !== undefined) await writeFile(join(dir, "modules.json"), JSON.stringify(modules));
  if (pooling) {
    await mkdir(join(dir, "1_Pooling"));
    await writeFile(join(dir, "1_Pooling", "config.json"), JSON.stringify(pooling));
  }
  return dir;
}

const mods = (...types: string[]) => types.map((type, idx) => ({ idx, name: String(idx), path: type === P ? "1_Pooling" : "", type }));

describe("readEmbeddingModel", () => {
  it("reads Qwen3-Embedding's published form: last token, then Normalize", async () => {
    const dir = await modelDir(mods(T, P, N), { word_embedding_dimension: 8, pooling_mode_mean_tokens: false, pooling_mode_lasttoken: true });
    expect(await readEmbeddingModel(dir)).toMatchObject({ ok: true, pooling: "last", normalize: true });
  });

  it("reads mean pooling without Normalize, and the newer pooling_mode form", async () => {
    expect(await readEmbeddingModel(await modelDir(mods(T, P), { pooling_mode_mean_tokens: true }))).toMatchObject({ ok: true, pooling: "mean", normalize: false });
    expect(await readEmbeddingModel(await modelDir(mods(T, P), { pooling_mode: "lasttoken" }))).toMatchObject({ ok: true, pooling: "last" });
  });

  it("pools by mean and normalizes without modules.json (and for a GGUF file path)", async () => {
    expect(await readEmbeddingModel(await modelDir(undefined))).toMatchObject({ ok: true, pooling: "mean", normalize: true });
    expect(await readEmbeddingModel("/nonexistent/model.gguf")).toMatchObject({ ok: true, pooling: "mean" });
  });

  it("refuses what it does not run, naming it", async () => {
    const dense = await readEmbeddingModel(await modelDir([...mods(T, P), { idx: 2, name: "2", path: "2_Dense", type: "sentence_transformers.models.Dense" }], { pooling_mode_mean_tokens: true }));
    expect(dense).toEqual({ ok: false, reason: expect.stringContaining("sentence_transformers.models.Dense") });
    const cls = await readEmbeddingModel(await modelDir(mods(T, P), { pooling_mode_cls_token: true }));
    expect(cls).toEqual({ ok: false, reason: expect.stringContaining("cls_token") });
    expect(await readEmbeddingModel(await modelDir(mods(T)))).toEqual({ ok: false, reason: "modules.json has no Pooling module" });
  });
});

describe("finishVector", () => {
  it("cuts to dimensions, then normalizes when asked", () => {
    expect(Array.from(finishVector(Float32Array.from([3, 4, 12]), 2, true))).toEqual([0.6000000238418579, 0.800000011920929]);
    expect(Array.from(finishVector(Float32Array.from([3, 4, 12]), null, false))).toEqual([3, 4, 12]);
  });
});
