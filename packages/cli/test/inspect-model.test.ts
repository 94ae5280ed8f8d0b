// `batchgen inspect-model` on the real Gemma 3 270M GGUF and on a generated Hugging
// Face directory: parameter counts against the gguf package and transformers, the
// KV bytes per token and the fit arithmetic worked by hand; on quantized checkpoints
// the format that runs and its bytes a parameter; and the error for a path that is
// not a model.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeModel } from "@batchgen/engine/tokenizer";
import { realGgufPath } from "../../engine/test/real-gguf.js";
import { referenceDir } from "../../engine/test/reference-models.js";
import { runPython } from "../../engine/test/run-python.js";
import { runBatchgen } from "./support/run-batchgen.js";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "bg-inspect-"));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const field = (out: string, name: string): string => new RegExp(`^${name}\\s+(.*)$`, "m").exec(out)?.[1] ?? "";

describe("batchgen inspect-model", () => {
  it("describes the Gemma 3 270M GGUF", { timeout: 180_000 }, async () => {
    const gguf = realGgufPath();
    const r = await runBatchgen(["inspect-model", gguf, "--seq-len", "4096", "--gpu-memory", "80GiB"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const ref = runPython(
      "import json,sys\nfrom gguf import GGUFReader\nr=GGUFReader(json.load(sys.stdin))\nprint(json.dumps(sum(int(t.n_elements) for t in r.tensors)))",
      gguf,
    ) as number;
    expect(field(r.stdout, "format")).toBe("GGUF v3");
    expect(field(r.stdout, "architecture")).toBe("gemma3 (Gemma 3 270m)");
    expect(field(r.stdout, "parameters")).toBe(`${(ref / 1e6).toFixed(1)}M (embedding 167.8M)`);
    expect(field(r.stdout, "dtype")).toMatch(/^Q4_K_M \(tensors: F32 x109, Q5_0 x81, Q4_K x27, Q8_0 x10, Q6_K x9\)$/);
    expect(field(r.stdout, "context")).toBe("32768 tokens");
    expect(field(r.stdout, "attention")).toBe("18 layers, 4 heads, 1 KV heads of 256; 15 sliding-window layers (512 tokens), 3 global");
    // 2 (K, V) x 18 layers x 1 KV head x 256 x 2 bytes (bf16).
    expect(field(r.stdout, "KV per token")).toMatch(/^18432 bytes in bf16 /);
    // (80 GiB - 2 bytes x params) x 0.9 / (4096 tokens x 18432 bytes), rounded down.
    const fit = Math.floor(((80 * 2 ** 30 - 2 * ref) * 0.9) / (4096 * 18432));
    expect(field(r.stdout, "fit")).toMatch(new RegExp(`^${fit} sequences of 4096 tokens in 80\\.00 GiB: `));
  });

  it("describes a Hugging Face directory", { timeout: 180_000 }, async () => {
    const model = join(dir, "tiny-llama");
    await makeModel({ dir: model, preset: "tiny-llama" });
    const ref = runPython(
      "import json,sys\nfrom transformers import AutoConfig, AutoModelForCausalLM\nd=json.load(sys.stdin)\nm=AutoModelForCausalLM.from_pretrained(d)\nc=m.config\n" +
        "print(json.dumps({'params': m.num_parameters(), 'layers': c.num_hidden_layers, 'kv': c.num_key_value_heads, 'hd': c.hidden_size // c.num_attention_heads, 'ctx': c.max_position_embeddings}))",
      model,
    ) as { params: number; layers: number; kv: number; hd: number; ctx: number };
    const r = await runBatchgen(["inspect-model", model, "--seq-len", "100", "--gpu-memory", "1GB"]);
    expect(r.code).toBe(0);
    expect(field(r.stdout, "format")).toBe("Hugging Face safetensors (1 file)");
    expect(field(r.stdout, "architecture")).toBe("LlamaForCausalLM (llama)");
    expect(field(r.stdout, "parameters")).toMatch(new RegExp(`^${(ref.params / 1e6).toFixed(1)}M `));
    expect(field(r.stdout, "context")).toBe(`${ref.ctx} tokens`);
    const perToken = 2 * ref.layers * ref.kv * ref.hd * 2;
    expect(field(r.stdout, "KV per token")).toMatch(new RegExp(`^${perToken} bytes in bf16 `));
    // 100 tokens hold 7 blocks of 16; 1 GB is 10^9 bytes.
    const fit = Math.floor(((1e9 - 2 * ref.params) * 0.9) / (112 * perToken));
    expect(field(r.stdout, "fit")).toMatch(new RegExp(`^${fit} sequences of 100 tokens in `));
  });

  it("says which quantized format runs and its bytes a parameter", { timeout: 600_000 }, async () => {
    // The engine's quantization fixtures (tools/quant_reference.py): the same 2-layer
    // Llama as AWQ g64, and in bf16 for --quantize fp8.
    const ref = await referenceDir(join(dirname(fileURLToPath(import.meta.url)), "../../engine/tools/quant_reference.py"));
    const awq = join(ref, "awq/model");
    const r = await runBatchgen(["inspect-model", awq]);
    expect(r.code).toBe(0);
    // 2 x (256 x 128) embedding and head, 5 norms of 128, per layer 128x128 q and o, 64x128 k and v,
    // 256x128 gate and up, 128x256 down: a qweight int32 holds 8 of them.
    const params = 2 * 256 * 128 + 5 * 128 + 2 * (2 * 128 * 128 + 2 * 64 * 128 + 3 * 256 * 128);
    expect(field(r.stdout, "parameters")).toBe(`${(params / 1e6).toFixed(1)}M (embedding 0.0M)`);
    const file = await readFile(join(awq, "model.safetensors"));
    const header = JSON.parse(file.subarray(8, 8 + Number(file.readBigUInt64LE(0))).toString("utf8")) as Record<string, { data_offsets?: number[] }>;
    const bytes = Object.values(header).reduce((n, t) => n + (t.data_offsets ? t.data_offsets[1]! - t.data_offsets[0]! : 0), 0);
    expect(field(r.stdout, "weights")).toBe(
      `AWQ int4 g64 (version gemm); ${(bytes / params).toFixed(3)} bytes a parameter as stored; the CPU engine runs them packed, ` +
        "the CUDA engine dequantizes them to bf16 at load (2 bytes a parameter; not the fast path)");
    const bf16 = await runBatchgen(["inspect-model", join(ref, "quantize-fp8/model"), "--quantize", "fp8"]);
    expect(bf16.code).toBe(0);
    const linear = 2 * (2 * 128 * 128 + 2 * 64 * 128 + 3 * 256 * 128);
    // fp8: a byte a parameter and a 4-byte scale for each of the 2 x (128 + 64 + 64 + 128 + 256 + 256 + 128) rows.
    const fp8 = (linear + 4 * 2 * (128 + 64 + 64 + 128 + 256 + 256 + 128)) / 2 ** 20;
    expect(field(bf16.stdout, "weights")).toBe(
      `none; 2.000 bytes a parameter as stored; --quantize fp8: ${(linear / 1e6).toFixed(1)}M linear parameters to fp8 e4m3, ` +
        `${fp8.toFixed(1)} MiB with their per-channel scales (${((2 * linear) / 2 ** 20).toFixed(1)} MiB in bf16)`);
    const bad = await runBatchgen(["inspect-model", awq, "--quantize", "int4"]);
    expect(bad.stderr.trim()).toBe('batchgen: --quantize: expected fp8, got "int4"');
  });

  it("names a path that is not a model, in one line", async () => {
    const r = await runBatchgen(["inspect-model", dir]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`batchgen: ${dir} is not a model: no config.json (Hugging Face directory) and no .gguf file.`);
    const bad = await runBatchgen(["inspect-model", dir, "--gpu-memory", "lots"]);
    expect(bad.stderr.trim()).toBe('batchgen: --gpu-memory: expected a size such as 80GiB or 141GB, got "lots"');
  });
});
