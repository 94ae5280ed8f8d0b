// Request lines for end-to-end batches, the same every run: chat lines (a user turn,
// some with a system prompt, some multi-turn) or completion lines; most greedy, every
// fourth sampled with a seed (temperature, top_k, top_p), so each line's completion is
// one exact answer the engine alone can reproduce.
import type { BatchEndpoint } from "@batchgen/core";

export interface RequestLine {
  custom_id: string;
  method: "POST";
  url: BatchEndpoint;
  body: Record<string, unknown>;
}

export interface LineOptions {
  model: string;
  /** custom_id prefix; default the endpoint's kind. */
  prefix?: string;
  /** Completion lengths cycle from minTokens to maxTokens; defaults 4 and 12. */
  minTokens?: number;
  maxTokens?: number;
}

const WORDS = ["alpha", "batch", "coordinator", "delta", "engine", "fleet", "gamma", "lease", "model", "shard", "token", "worker"];

function phrase(i: number, words: number): string {
  const out: string[] = [];
  for (let k = 0; k < words; k++) out.push(WORDS[(i * 7 + k * 5) % WORDS.length]!);
  return `${out.join(" ")} #${i}`;
}

function sampling(i: number, opts: LineOptions): Record<string, unknown> {
  const min = opts.minTokens ?? 4;
  const span = (opts.maxTokens ?? 12) - min + 1;
  const length = min + ((i * 5) % span);
  const lengthField = i % 3 === 0 ? { max_completion_tokens: length } : { max_tokens: length };
  if (i % 4 === 3) return { ...lengthField, temperature: 0.9, top_k: 20, top_p: 0.95, seed: 1000 + i };
  return { ...lengthField, temperature: 0 };
}

export function chatLines(count: number, opts: LineOptions): RequestLine[] {
  const lines: RequestLine[] = [];
  for (let i = 0; i < count; i++) {
    const messages: Array<{ role: string; content: string }> = [];
    if (i % 5 === 1) messages.push({ role: "system", content: "Answer in one short line." });
    messages.push({ role: "user", content: `Say something about ${phrase(i, 2 + (i % 4))}.` });
    if (i % 7 === 2) {
      messages.push({ role: "assistant", content: "Sure." }, { role: "user", content: "And then?" });
    }
    lines.push({
      custom_id: `${opts.prefix ?? "chat"}-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: opts.model, messages, ...sampling(i, opts) },
    });
  }
  return lines;
}

export function completionLines(count: number, opts: LineOptions): RequestLine[] {
  const lines: RequestLine[] = [];
  for (let i = 0; i < count; i++) {
    lines.push({
      custom_id: `${opts.prefix ?? "cmpl"}-${i}`,
      method: "POST",
      url: "/v1/completions",
      body: { model: opts.model, prompt: `Once upon a time, ${phrase(i, 1 + (i % 5))}`, ...sampling(i, opts) },
    });
  }
  return lines;
}

/**
 * A mixed batch (a batchgen extension): chat and completion lines interleaved, two chat
 * lines then one completion line, so every shard holds both kinds at shifting offsets.
 */
export function mixedLines(count: number, opts: LineOptions): RequestLine[] {
  const completions = Math.floor(count / 3);
  const chat = chatLines(count - completions, opts);
  const completion = completionLines(completions, opts);
  const lines: RequestLine[] = [];
  for (let i = 0, c = 0, p = 0; i < count; i++) lines.push(i % 3 === 2 && p < completions ? completion[p++]! : chat[c++]!);
  return lines;
}

export function toJsonl(lines: readonly RequestLine[]): string {
  return lines.map((l) => JSON.stringify(l)).join("\n") + "\n";
}
