// batchgen inspect-model PATH [--seq-len N] [--gpu-memory 80GiB] [--quantize fp8]:
// what a model is, which weight format runs and what it costs on a GPU, from its
// headers alone (model-summary.ts).
import { Command } from "commander";
import { CliError } from "../cli-error.js";
import { kvBytesPerSequence, kvBytesPerToken, summarizeModel, type ModelSummary } from "../model-summary.js";
import type { Output } from "../output.js";

// The CUDA engine keeps weights and KV in bf16 and gives the KV cache this share of
// the memory left after the weights (EngineLoadOptions.kvCacheMemoryFraction).
const GPU_BYTES = 2;
const KV_FRACTION = 0.9;

export function inspectModelCommand(out: Output): Command {
  return new Command("inspect-model")
    .description("print a model's architecture, size, dtype, context and KV cache needs (a Hugging Face directory or a GGUF file)")
    .argument("<path>", "model directory or .gguf file")
    .option("--seq-len <n>", "tokens per sequence (prompt + completion) for the fit estimate", "4096")
    .option("--gpu-memory <size>", "GPU memory for the fit estimate, e.g. 80GiB, 141GB, 24000MiB", "80GiB")
    .option("--quantize <fp8>", "also say what the engine's --quantize fp8 makes of the float linear weights")
    .action(async (path: string, flags: { seqLen: string; gpuMemory: string; quantize?: string }) => {
      if (flags.quantize !== undefined && flags.quantize !== "fp8") {
        throw new CliError(`--quantize: expected fp8, got "${flags.quantize}"`);
      }
      const seqLen = Number(flags.seqLen);
      if (!Number.isInteger(seqLen) || seqLen < 1) throw new CliError(`--seq-len: expected a positive whole number, got "${flags.seqLen}"`);
      const gpu = parseBytes(flags.gpuMemory);
      const s = await summarizeModel(path);
      const local = s.layerWindows.filter((w) => w > 0).length;
      const perToken = kvBytesPerToken(s, GPU_BYTES);
      const perSeq = kvBytesPerSequence(s, seqLen, GPU_BYTES);
      const weights = s.parameters * GPU_BYTES;
      const kv = Math.max(0, (gpu - weights) * KV_FRACTION);
      const fit = Math.floor(kv / perSeq);
      const windows = local === 0 ? "all global"
        : local === s.layers ? `every layer windowed to ${Math.max(...s.layerWindows)} tokens`
        : `${local} sliding-window layers (${Math.max(...s.layerWindows)} tokens), ${s.layers - local} global`;
      out.result([
        `model         ${s.path}`,
        `format        ${s.format}`,
        `architecture  ${s.architecture}`,
        `parameters    ${millions(s.parameters)} (embedding ${millions(s.embeddingParameters)})`,
        `dtype         ${s.dtype}`,
        `weights       ${weightsLine(s, flags.quantize === "fp8")}`,
        `context       ${s.contextLength} tokens`,
        `attention     ${s.layers} layers, ${s.heads} heads, ${s.kvHeads} KV heads of ${s.headDim}; ${windows}`,
        `KV per token  ${perToken} bytes in bf16 (K and V x ${s.layers} layers x ${s.kvHeads} KV heads x ${s.headDim}), ${2 * perToken} in f32 (CPU)`,
        `fit           ${fit} sequences of ${seqLen} tokens in ${gib(gpu)}: weights ${gib(weights)} in bf16, ` +
          `KV cache ${gib(kv)} (${KV_FRACTION * 100}% of the rest), ${gib(perSeq)} a sequence` +
          (local > 0 && local < s.layers ? " (global layers keep every block, so windows save nothing)" : ""),
      ].join("\n"));
    });
}

/**
 * Which weight format runs and its bytes a parameter. Quantized weights run packed
 * on the CPU engine; the CUDA engine dequantizes them to bf16 at load until its
 * int4 and FP8 kernels exist (issue 14), so the fit below counts bf16 weights.
 */
export function weightsLine(s: ModelSummary, quantizeFp8: boolean): string {
  const perParam = (s.storedBytes / Math.max(1, s.parameters)).toFixed(3);
  let line = `${s.quantization}; ${perParam} bytes a parameter as stored`;
  if (s.quantized) {
    line += "; the CPU engine runs them packed, the CUDA engine dequantizes them to bf16 at load (2 bytes a parameter; not the fast path)";
  }
  if (quantizeFp8) {
    line += s.linearParameters > 0
      ? `; --quantize fp8: ${millions(s.linearParameters)} linear parameters to fp8 e4m3, ` +
        `${gib(s.linearParameters + 4 * s.linearRows)} with their per-channel scales (${gib(2 * s.linearParameters)} in bf16)`
      : "; --quantize fp8: no float linear weights to convert";
  }
  return line;
}

/** "80GiB", "80 GB", "141G", "24000MiB" or a plain byte count. */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$/i.exec(text);
  if (!m) throw new CliError(`--gpu-memory: expected a size such as 80GiB or 141GB, got "${text}"`);
  const power = " kmgt".indexOf((m[2] || " ").toLowerCase());
  const base = m[3] || !m[2] ? 1024 : 1000;
  return Number(m[1]) * base ** power;
}

function millions(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : `${(n / 1e6).toFixed(1)}M`;
}

function gib(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
