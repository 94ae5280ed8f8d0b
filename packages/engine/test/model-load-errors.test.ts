// Bad model directories get a clear error of the right class, naming the file and
// tensor at fault, and the process goes on: missing directory, config or weights,
// corrupt config, truncated safetensors, headers that lie about sizes and offsets,
// shapes that disagree with config.json, an unsupported architecture; and GGUF files
// (written by the gguf package) whose architecture or tensor type we do not support.
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { DeviceError, Engine, EngineError, ModelLoadError, UnsupportedError } from "../ts/index.js";
import { referenceCases, type ReferenceCase } from "./reference-models.js";
import { runPython } from "./run-python.js";

let good: ReferenceCase;
let root: string;

beforeAll(async () => {
  good = (await referenceCases()).find((c) => c.name === "llama-gqa")!;
  root = await mkdtemp(join(tmpdir(), "bg-load-errors-"));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let counter = 0;
/** A fresh copy of the good llama model directory. */
async function copyModel(): Promise<string> {
  const dir = join(root, `m${counter++}`);
  await cp(good.modelDir, dir, { recursive: true });
  return dir;
}

async function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): Promise<void> {
  const c = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
  edit(c);
  await writeFile(join(dir, "config.json"), JSON.stringify(c));
}

interface Header { [name: string]: { dtype: string; shape: number[]; data_offsets: [number, number] } }

/** Rewrites model.safetensors with an edited header (data bytes unchanged). */
async function editHeader(dir: string, edit: (h: Header) => void): Promise<void> {
  const path = join(dir, "model.safetensors");
  const buf = await readFile(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Header;
  edit(header);
  const text = Buffer.from(JSON.stringify(header), "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  await writeFile(path, Buffer.concat([len, text, buf.subarray(8 + n)]));
}

async function loadError(modelDir: string, device: "cpu" | "cuda" = "cpu"): Promise<EngineError> {
  const err = await Engine.load({ modelDir, device, threads: 1, kvCacheBlocks: 16 }).then(
    async (e) => {
      await e.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(err, `loading ${modelDir} should fail`).toBeInstanceOf(EngineError);
  return err as EngineError;
}

describe("model load errors", () => {
  it("missing directory", async () => {
    const err = await loadError(join(root, "does-not-exist"));
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.message).toMatch(/does-not-exist does not exist/);
  });

  it("missing config.json", async () => {
    const dir = join(root, "no-config");
    await mkdir(dir);
    await copyFile(join(good.modelDir, "model.safetensors"), join(dir, "model.safetensors"));
    const err = await loadError(dir);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.message).toMatch(/missing config\.json/);
  });

  it("corrupt config.json", async () => {
    const dir = await copyModel();
    await writeFile(join(dir, "config.json"), '{"architectures": ["LlamaForCausalLM"], ');
    const err = await loadError(dir);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.message).toMatch(/config\.json: invalid JSON at byte \d+/);
  });

  it("missing weights", async () => {
    const dir = await copyModel();
    await rm(join(dir, "model.safetensors"));
    const err = await loadError(dir);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.message).toMatch(/no weights in .*model\.safetensors/);
  });

  it("truncated safetensors", async () => {
    const dir = await copyModel();
    const path = join(dir, "model.safetensors");
    const size = (await readFile(path)).length;
    await truncate(path, size - 1000);
    const err = await loadError(dir);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.message).toMatch(/model\.safetensors: tensor '.+': .*run past the end .*truncated/);
    await truncate(path, 5);
    expect((await loadError(dir)).message).toMatch(/model\.safetensors: truncated safetensors file/);
  });

  it("header length larger than the file", async () => {
    const dir = await copyModel();
    const path = join(dir, "model.safetensors");
    const buf = await readFile(path);
    buf.writeBigUInt64LE(BigInt(buf.length));
    await writeFile(path, buf);
    const err = await loadError(dir);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.message).toMatch(/model\.safetensors: safetensors header length \d+ is larger than the file allows/);
  });

  it("header whose shape disagrees with its byte range", async () => {
    const dir = await copyModel();
    await editHeader(dir, (h) => { h["model.norm.weight"]!.shape = [129]; });
    const err = await loadError(dir);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.message).toMatch(/tensor 'model\.norm\.weight': dtype F32 and shape \[129\] need 516 bytes but data_offsets span 512/);
  });

  it("header offsets past the end and overlapping", async () => {
    const dir = await copyModel();
    await editHeader(dir, (h) => {
      const t = h["model.norm.weight"]!;
      t.data_offsets = [t.data_offsets[0] + 2 ** 30, t.data_offsets[1] + 2 ** 30];
    });
    expect((await loadError(dir)).message).toMatch(/tensor 'model\.norm\.weight': data_offsets .* run past the end/);

    const dir2 = await copyModel();
    await editHeader(dir2, (h) => {
      h["model.layers.1.input_layernorm.weight"]!.data_offsets = [...h["model.layers.0.input_layernorm.weight"]!.data_offsets];
    });
    const err = await loadError(dir2);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.message).toMatch(/model\.layers\.[01]\.input_layernorm\.weight' overlaps tensor/);
  });

  it("weights whose shapes disagree with config.json", async () => {
    const dir = await copyModel();
    await editConfig(dir, (c) => { c.intermediate_size = 301; });
    const err = await loadError(dir);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.message).toMatch(
      /tensor 'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \[300, 128\], but config\.json implies \[301, 128\]/);
  });

  it("unsupported architecture", async () => {
    const dir = await copyModel();
    await editConfig(dir, (c) => { c.architectures = ["Phi3ForCausalLM"]; c.model_type = "phi3"; });
    const err = await loadError(dir);
    expect(err).toBeInstanceOf(UnsupportedError);
    expect(err.message).toMatch(/unsupported architecture "Phi3ForCausalLM".*supported: GemmaForCausalLM, Gemma2ForCausalLM/);
  });

  it("cuda on a machine or build without it", async () => {
    const err = await loadError(good.modelDir, "cuda");
    expect(err instanceof UnsupportedError || err instanceof DeviceError).toBe(true);
    expect(err.message).toMatch(/cuda|CUDA/);
  });

  it("the process survives: the good model still loads and generates", async () => {
    const engine = await Engine.load({ modelDir: good.modelDir, device: "cpu", threads: 1, kvCacheBlocks: 16 });
    try {
      const r = await engine.generate({ prompt: good.greedy[0]!.prompt, maxTokens: 8, temperature: 0, ignoreEos: true });
      expect(r.tokens).toEqual(good.greedy[0]!.tokens.slice(0, 8));
    } finally {
      await engine.close();
    }
  });
});

// A one-layer llama GGUF as llama.cpp lays it out; `arch` and the type of attn_q vary.
const TINY_GGUF = String.raw`
import json, sys
import numpy as np
from gguf import GGUFWriter, GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
inp = json.load(sys.stdin)
rng = np.random.default_rng(7)
H, V = 256, 64
f = lambda *shape: (rng.standard_normal(shape) * 0.05).astype(np.float32)
for path, arch, q_type in inp["files"]:
    w = GGUFWriter(path, arch)
    w.add_context_length(128); w.add_embedding_length(H); w.add_block_count(1); w.add_feed_forward_length(H)
    w.add_head_count(2); w.add_head_count_kv(1); w.add_layer_norm_rms_eps(1e-5); w.add_rope_freq_base(1e4)
    w.add_tokenizer_model("gpt2"); w.add_token_list(["t%d" % i for i in range(V)]); w.add_token_types([1] * V)
    w.add_token_merges([]); w.add_eos_token_id(1)
    w.add_tensor("token_embd.weight", f(V, H)); w.add_tensor("output_norm.weight", f(H) + 1)
    w.add_tensor("blk.0.attn_norm.weight", f(H) + 1); w.add_tensor("blk.0.ffn_norm.weight", f(H) + 1)
    if q_type == "F32":
        w.add_tensor("blk.0.attn_q.weight", f(H, H))
    else:
        block, size = GGML_QUANT_SIZES[T[q_type]]
        w.add_tensor("blk.0.attn_q.weight", np.zeros((H, H // block * size), dtype=np.uint8), raw_dtype=T[q_type])
    w.add_tensor("blk.0.attn_k.weight", f(128, H)); w.add_tensor("blk.0.attn_v.weight", f(128, H))
    for name in ("attn_output", "ffn_gate", "ffn_up", "ffn_down"):
        w.add_tensor("blk.0.%s.weight" % name, f(H, H))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
print("null")
`;

describe("GGUF load errors", () => {
  it("an unsupported architecture or tensor type is an UnsupportedError that names it; the good file loads", async () => {
    const file = (name: string) => join(root, `${name}.gguf`);
    runPython(TINY_GGUF, {
      files: [[file("good"), "llama", "F32"], [file("mamba"), "mamba", "F32"], [file("q3k"), "llama", "Q3_K"],
        [file("iq2"), "llama", "IQ2_XXS"]],
    });

    const mamba = await loadError(file("mamba"));
    expect(mamba).toBeInstanceOf(UnsupportedError);
    expect(mamba.message).toBe(
      `${file("mamba")}: GGUF architecture "mamba" is not supported (supported: llama, qwen2, qwen3, gemma, gemma2, gemma3)`);
    for (const [name, type] of [["q3k", "Q3_K"], ["iq2", "IQ2_XXS"]] as const) {
      const err = await loadError(file(name));
      expect(err).toBeInstanceOf(UnsupportedError);
      expect(err.message).toBe(`${file(name)}: tensor 'blk.0.attn_q.weight' has type ${type}, which batchgen cannot ` +
        "dequantize (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and Q6_K are supported)");
    }

    // The same file with attn_q in F32 loads and runs: the errors above are the type's and the architecture's.
    const engine = await Engine.load({ modelDir: file("good"), device: "cpu", threads: 1, kvCacheBlocks: 16 });
    try {
      expect(engine.model.architecture).toBe("LlamaForCausalLM");
      const r = await engine.generate({ prompt: [3, 4, 5], maxTokens: 4, temperature: 0, ignoreEos: true });
      expect(r.tokens).toHaveLength(4);
    } finally {
      await engine.close();
    }
  });
});
