// The body of an embeddings output line, OpenAI's `list` of `embedding` objects:
// each pooled vector cut to `dimensions`, normalized when the model normalizes
// (sentence-transformers' Normalize module; after the cut, as OpenAI's shortened
// embeddings and Qwen3-Embedding's Matryoshka vectors are unit length), written as
// JSON numbers (9 significant digits: every float32 reads back exactly) or as
// base64 of the little-endian float32 bytes (encoding_format "base64").
import type { EmbeddingOptions } from "@batchgen/core";

export interface EmbeddingsBodyInput {
  model: string;
  vectors: Float32Array[];
  options: EmbeddingOptions;
  promptTokens: number;
}

/** The vector as the line asked for it: cut to `dimensions`, then L2-normalized if asked. */
export function finishVector(v: Float32Array, dimensions: number | null, normalize: boolean): Float32Array {
  const out = Float32Array.from(dimensions === null ? v : v.subarray(0, dimensions));
  if (!normalize) return out;
  let sq = 0;
  for (const x of out) sq += x * x;
  // sentence-transformers' Normalize: x / max(||x||, 1e-12).
  const norm = Math.max(Math.sqrt(sq), 1e-12);
  for (let i = 0; i < out.length; i++) out[i] = out[i]! / norm;
  return out;
}

function encode(v: Float32Array, format: EmbeddingOptions["encodingFormat"]): string {
  if (format === "base64") {
    const bytes = Buffer.alloc(v.length * 4);
    v.forEach((x, i) => bytes.writeFloatLE(x, i * 4));
    return JSON.stringify(bytes.toString("base64"));
  }
  return `[${Array.from(v, (x) => String(Number(x.toPrecision(9)))).join(",")}]`;
}

/** The response body's JSON text (key order as OpenAI writes it). */
export function embeddingsBodyJson(b: EmbeddingsBodyInput): string {
  const data = b.vectors.map((v, index) => `{"object":"embedding","index":${index},"embedding":${encode(v, b.options.encodingFormat)}}`);
  return (
    `{"object":"list","data":[${data.join(",")}],"model":${JSON.stringify(b.model)},` +
    `"usage":{"prompt_tokens":${b.promptTokens},"total_tokens":${b.promptTokens}}}`
  );
}
