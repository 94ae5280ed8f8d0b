// The body of a /v1/embeddings line: `input` (a string, a list of strings, a list of
// token ids, or a list of token-id lists: one vector each), `dimensions` and
// `encoding_format`, checked as OpenAI checks them. How the model pools and
// normalizes comes from the model (the worker reads its sentence-transformers
// configuration), not from the line.
import { BatchgenError } from "./errors.js";
import { describeRange, inRange, REQUEST_LIMITS } from "./request-limits.js";

export type EmbeddingInput = { text: string } | { tokenIds: number[] };

export interface EmbeddingOptions {
  /** One vector per input, in order (the response's data[i].index). */
  inputs: EmbeddingInput[];
  /** The first `dimensions` values of each vector (then normalized if the model normalizes); null = all. */
  dimensions: number | null;
  /** "float": a JSON array; "base64": the little-endian float32 bytes in base64, as OpenAI writes them. */
  encodingFormat: "float" | "base64";
}

/** OpenAI's limit on inputs per embeddings request. */
export const MAX_EMBEDDING_INPUTS = 2048;

function invalid(message: string, param: string, reason = "invalid_request"): BatchgenError {
  return new BatchgenError("invalid_request", message, { param, reason });
}

function tokenIds(v: unknown[], param: string): number[] {
  return v.map((t, i) => {
    if (typeof t !== "number" || !inRange(t, REQUEST_LIMITS.prompt_token_id)) {
      throw invalid(`token ids in '${param}' must be ${describeRange(REQUEST_LIMITS.prompt_token_id)}.`, `${param}[${i}]`);
    }
    return t;
  });
}

function parseInput(v: unknown): EmbeddingInput[] {
  if (v === undefined || v === null) throw invalid("Missing required parameter: 'input'.", "input", "missing_required_parameter");
  if (typeof v === "string") {
    if (v.length === 0) throw invalid("'input' cannot be an empty string.", "input");
    return [{ text: v }];
  }
  if (!Array.isArray(v) || v.length === 0) {
    throw invalid("'input' must be a non-empty string, an array of strings, or an array of token ids (or of token-id arrays).", "input");
  }
  if (v.length > MAX_EMBEDDING_INPUTS) {
    throw invalid(`'input' takes at most ${MAX_EMBEDDING_INPUTS} entries, got ${v.length}.`, "input");
  }
  if (v.every((x) => typeof x === "number")) return [{ tokenIds: tokenIds(v, "input") }];
  return v.map((x, i) => {
    const param = `input[${i}]`;
    if (typeof x === "string") {
      if (x.length === 0) throw invalid(`'${param}' cannot be an empty string.`, param);
      return { text: x };
    }
    if (Array.isArray(x) && x.length > 0) return { tokenIds: tokenIds(x, param) };
    throw invalid(`'${param}' must be a non-empty string or a non-empty array of token ids.`, param);
  });
}

/** Throws BatchgenError(invalid_request, {param}) for a body OpenAI would refuse. */
export function parseEmbeddingOptions(body: Record<string, unknown>): EmbeddingOptions {
  const dims = body.dimensions ?? undefined;
  if (dims !== undefined && !(typeof dims === "number" && Number.isSafeInteger(dims) && dims >= 1)) {
    throw invalid(`'dimensions' must be a positive integer, got ${JSON.stringify(dims)}.`, "dimensions");
  }
  const format = body.encoding_format ?? "float";
  if (format !== "float" && format !== "base64") {
    throw invalid(`'encoding_format' must be 'float' or 'base64', got ${JSON.stringify(format)}.`, "encoding_format");
  }
  return { inputs: parseInput(body.input), dimensions: (dims as number | undefined) ?? null, encodingFormat: format };
}
