// What `batchgen inspect-model` reports about a model without loading its weights:
// from a GGUF file's header, or a Hugging Face directory's config.json and
// safetensors headers. The KV cache arithmetic follows the engine: K and V for
// every layer and KV head, in the activation dtype (bf16 on CUDA, f32 on the CPU
// backend), in blocks of 16 tokens; sliding windows bound a sequence's KV only
// when every layer has one (a global layer keeps every block).
import { existsSync } from "node:fs";
import { open, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { CliError } from "./cli-error.js";

const ENGINE_TOKENIZER = "@batchgen/engine/tokenizer";
export const KV_BLOCK_TOKENS = 16;

export interface ModelSummary {
  path: string;
  format: string;
  architecture: string;
  parameters: number;
  embeddingParameters: number;
  /** "bfloat16", or the GGUF file type and its tensor types. */
  dtype: string;
  contextLength: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Per layer: 0 = global attention, else its window in tokens. */
  layerWindows: number[];
  /** How the weights are quantized ("none", "AWQ int4 g128", "GGUF Q4_0/Q4_K ..."), and whether they are. */
  quantization: string;
  quantized: boolean;
  /** Bytes the weight tensors take as stored (packed data, scales, zero points included). */
  storedBytes: number;
  /** Parameters of the decoder's linear layers (q/k/v/o, gate/up/down) held as floats: what --quantize fp8 converts. */
  linearParameters: number;
  /** Their output rows (a per-channel scale each). */
  linearRows: number;
}

/** Bytes of K and V one token takes over all layers, for an element size in bytes. */
export function kvBytesPerToken(s: ModelSummary, elementBytes: number): number {
  return 2 * s.layers * s.kvHeads * s.headDim * elementBytes;
}

/** KV bytes one sequence of seqLen tokens holds at its longest, in whole blocks. */
export function kvBytesPerSequence(s: ModelSummary, seqLen: number, elementBytes: number): number {
  const allWindowed = s.layerWindows.length > 0 && s.layerWindows.every((w) => w > 0);
  // The engine frees blocks outside every layer's window; with a global layer nothing is.
  const held = allWindowed ? Math.min(seqLen, Math.max(...s.layerWindows) + KV_BLOCK_TOKENS) : seqLen;
  return Math.ceil(held / KV_BLOCK_TOKENS) * KV_BLOCK_TOKENS * kvBytesPerToken(s, elementBytes);
}

export async function summarizeModel(path: string): Promise<ModelSummary> {
  const engine = (await import(ENGINE_TOKENIZER)) as typeof import("@batchgen/engine/tokenizer");
  const gguf = await engine.findGgufFile(path).catch((err: Error) => {
    throw new CliError(err.message);
  });
  if (gguf) return summarizeGguf(gguf, engine);
  if (!existsSync(join(path, "config.json"))) {
    throw new CliError(`${path} is not a model: no config.json (Hugging Face directory) and no .gguf file.`);
  }
  return summarizeHf(path);
}

async function summarizeGguf(path: string, engine: typeof import("@batchgen/engine/tokenizer")): Promise<ModelSummary> {
  const f = await engine.GgufFile.open(path);
  const arch = f.architecture;
  const n = (key: string, fallback?: number): number => {
    const v = f.number(`${arch}.${key}`) ?? fallback;
    if (v === undefined) throw new CliError(`${path}: GGUF metadata '${arch}.${key}' is missing`);
    return v;
  };
  let parameters = 0;
  let embedding = 0;
  let storedBytes = 0;
  let linearParameters = 0;
  let linearRows = 0;
  let repacked = 0;
  const types = new Map<string, number>();
  for (const t of f.tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    parameters += count;
    storedBytes += (count * (engine.GGML_TYPE_BITS[t.type] ?? 32)) / 8;
    if (t.name === "token_embd.weight") embedding = count;
    if (/^blk\.\d+\.(attn_[qkv]|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$/.test(t.name)) {
      // F32, F16, BF16: what --quantize fp8 would convert.
      if (t.type === 0 || t.type === 1 || t.type === 30) {
        linearParameters += count;
        linearRows += t.shape[0] ?? 0;
      }
      // Q4_0 and Q4_K linear weights run as our int4 (the engine's gguf loader).
      if (t.type === 2 || t.type === 12) repacked += count;
    }
    const name = engine.GGML_TYPE_NAMES[t.type] ?? `type ${t.type}`;
    types.set(name, (types.get(name) ?? 0) + 1);
  }
  const layers = n("block_count");
  const heads = n("attention.head_count");
  const hidden = n("embedding_length");
  const window = n("attention.sliding_window", 0);
  // Gemma 2 alternates local and global layers, Gemma 3 has five local to one global.
  const period = arch === "gemma2" ? 2 : arch === "gemma3" ? 6 : 0;
  const layerWindows = Array.from({ length: layers }, (_, l) => (period ? ((l + 1) % period ? window : 0) : window));
  const fileType = FILE_TYPES[f.number("general.file_type") ?? -1];
  const mix = [...types].sort((a, b) => b[1] - a[1]).map(([t, c]) => `${t} x${c}`).join(", ");
  return {
    path,
    format: `GGUF v${f.version}`,
    architecture: `${arch}${f.string("general.name") ? ` (${f.string("general.name")})` : ""}`,
    parameters,
    embeddingParameters: embedding,
    dtype: `${fileType ?? "mixed"} (tensors: ${mix})`,
    contextLength: n("context_length"),
    layers,
    heads,
    kvHeads: n("attention.head_count_kv", heads),
    headDim: n("attention.key_length", hidden / heads),
    layerWindows,
    quantization: repacked > 0
      ? `GGUF Q4_0/Q4_K linear weights (${((100 * repacked) / parameters).toFixed(1)}% of the parameters) repacked into int4 g32 (dequantized where fused with another type in q/k/v or gate/up); other types dequantized`
      : "none (GGUF types dequantized at load)",
    quantized: repacked > 0,
    storedBytes,
    linearParameters,
    linearRows,
  };
}

async function summarizeHf(dir: string): Promise<ModelSummary> {
  const top = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
  const cfg = (typeof top.text_config === "object" && top.text_config !== null ? top.text_config : top) as Record<string, unknown>;
  const num = (key: string, fallback?: number): number => {
    const v = cfg[key] ?? top[key] ?? fallback;
    if (typeof v !== "number") throw new CliError(`${join(dir, "config.json")}: "${key}" is missing`);
    return v;
  };
  let parameters = 0;
  let embedding = 0;
  let storedBytes = 0;
  let linearParameters = 0;
  let linearRows = 0;
  const dtypes = new Map<string, number>();
  const files = (await readdir(dir)).filter((n) => n.endsWith(".safetensors")).sort();
  if (files.length === 0) throw new CliError(`${dir}: no *.safetensors weights`);
  for (const name of files) {
    for (const [tensor, info] of Object.entries(await safetensorsHeader(join(dir, name)))) {
      if (tensor === "__metadata__") continue;
      const { dtype, shape, data_offsets: offsets } = info as { dtype: string; shape: number[]; data_offsets: [number, number] };
      storedBytes += offsets[1] - offsets[0];
      const count = quantizedParameters(tensor, dtype, shape);
      if (count === 0) continue;
      parameters += count;
      if (tensor.endsWith("embed_tokens.weight")) embedding = count;
      // The float linear weights, which --quantize fp8 would convert.
      if (FLOAT_DTYPES.has(dtype) && /\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$/.test(tensor)) {
        linearParameters += count;
        linearRows += shape[0]!;
      }
      dtypes.set(dtype, (dtypes.get(dtype) ?? 0) + count);
    }
  }
  const quantization = describeQuantization(cfg.quantization_config ?? top.quantization_config);
  const layers = num("num_hidden_layers");
  const heads = num("num_attention_heads");
  const windowValue = cfg.sliding_window;
  const window = typeof windowValue === "number" ? windowValue : 0;
  const types = Array.isArray(cfg.layer_types) ? (cfg.layer_types as string[]) : null;
  const modelType = String(cfg.model_type ?? top.model_type ?? "");
  const windowed = (l: number): boolean => {
    if (types) return types[l] === "sliding_attention";
    if (modelType === "gemma2") return l % 2 === 0;
    if (modelType.startsWith("gemma3")) return (l + 1) % 6 !== 0;
    if (modelType === "qwen2" || modelType === "qwen3") return cfg.use_sliding_window === true;
    return modelType === "mistral";
  };
  const archs = top.architectures;
  return {
    path: dir,
    format: `Hugging Face safetensors (${files.length} file${files.length === 1 ? "" : "s"})`,
    architecture: `${Array.isArray(archs) ? String(archs[0]) : modelType} (${modelType})`,
    parameters,
    embeddingParameters: embedding,
    dtype: [...dtypes].sort((a, b) => b[1] - a[1]).map(([d]) => DTYPE_NAMES[d] ?? d).join(", "),
    contextLength: num("max_position_embeddings", 0),
    layers,
    heads,
    kvHeads: num("num_key_value_heads", heads),
    headDim: num("head_dim", num("hidden_size") / heads),
    layerWindows: Array.from({ length: layers }, (_, l) => (window > 0 && windowed(l) ? window : 0)),
    quantization,
    quantized: quantization !== "none",
    storedBytes,
    linearParameters,
    linearRows,
  };
}

const FLOAT_DTYPES = new Set(["BF16", "F16", "F32"]);

// Tensors of quantized checkpoints that hold no parameters of their own: scales,
// zero points, group indices, lookup tables and bitsandbytes' quant state.
const QUANT_STATE = /\.(qzeros|scales|g_idx|weight_scale|weight_scale_inv|input_scale|absmax|quant_map|nested_absmax|nested_quant_map|quant_state\.bitsandbytes__\w+)$/;

/** Parameters a tensor stands for: eight a packed int32 (AWQ/GPTQ qweight), two a byte (bitsandbytes 4-bit). */
function quantizedParameters(name: string, dtype: string, shape: number[]): number {
  const count = shape.reduce((a, b) => a * b, 1);
  if (QUANT_STATE.test(name)) return 0;
  if (name.endsWith(".qweight")) return count * 8;
  if (dtype === "U8" && name.endsWith(".weight")) return count * 2;
  return count;
}

/** quantization_config in the engine's words (src/quant/quant_hf.h lists what it reads). */
function describeQuantization(qc: unknown): string {
  if (typeof qc !== "object" || qc === null) return "none";
  const q = qc as Record<string, unknown>;
  const method = String(q.quant_method ?? "?");
  const group = q.group_size === -1 ? " per channel" : ` g${String(q.group_size ?? 128)}`;
  if (method === "awq") return `AWQ int4${group} (version ${String(q.version ?? "gemm")})`;
  if (method === "gptq") return `GPTQ int4${group}${q.desc_act === true ? " act-order" : ""}`;
  if (method === "bitsandbytes") {
    if (q.load_in_4bit !== true) return "bitsandbytes 8-bit (not supported by the engine)";
    return `bitsandbytes 4-bit ${String(q.bnb_4bit_quant_type ?? "fp4")}${q.bnb_4bit_use_double_quant === true ? " with double quantization" : ""}`;
  }
  if (method === "fp8" || method === "fbgemm_fp8" || method === "compressed-tensors") {
    const block = Array.isArray(q.weight_block_size) ? `, block ${(q.weight_block_size as number[]).join("x")}` : "";
    return `FP8 e4m3 (${method}${block})`;
  }
  return `${method} (not supported by the engine)`;
}

async function safetensorsHeader(path: string): Promise<Record<string, unknown>> {
  const handle = await open(path, "r");
  try {
    const len = Buffer.alloc(8);
    await handle.read(len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    if (n > 100 << 20) throw new CliError(`${path}: safetensors header of ${n} bytes is impossible`);
    const header = Buffer.alloc(n);
    await handle.read(header, 0, n, 8);
    return JSON.parse(header.toString("utf8")) as Record<string, unknown>;
  } finally {
    await handle.close();
  }
}

const DTYPE_NAMES: Record<string, string> = { BF16: "bfloat16", F16: "float16", F32: "float32" };

// llama.cpp's general.file_type (LLAMA_FTYPE_*).
const FILE_TYPES: Record<number, string> = {
  0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M",
  13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 32: "BF16",
};
