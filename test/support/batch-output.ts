// Checks of a finished batch's files: every custom_id exactly once across output and
// errors, each file in input order, and every response body equal to what the engine
// alone answers for that line.
import { expect } from "vitest";
import type { RequestLine } from "./batch-requests.js";
import type { ExpectedCompletion } from "./engine-reference.js";

/** The parts of a chat.completion / text_completion body the checks read. */
export interface ResponseBody {
  object: string;
  model: string;
  choices: Array<{ message?: { role: string; content: string }; text?: string; finish_reason: "stop" | "length" }>;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

export interface OutputLine {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: ResponseBody } | null;
  error: { code: string; message: string } | null;
}

export function parseJsonl(text: string): OutputLine[] {
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as OutputLine);
}

/** Each file holds its custom_ids in input order, and together they hold each input line once. */
export function expectEveryLineOnce(input: readonly RequestLine[], output: readonly OutputLine[], errors: readonly OutputLine[] = []): void {
  const position = new Map(input.map((l, i) => [l.custom_id, i]));
  for (const [name, file] of [["output", output], ["errors", errors]] as const) {
    const at = file.map((l) => position.get(l.custom_id) ?? -1);
    expect(at.filter((p) => p < 0), `${name} lines with a custom_id not in the input`).toEqual([]);
    const outOfOrder = at.findIndex((p, i) => i > 0 && p <= at[i - 1]!);
    expect(outOfOrder, `${name} line ${outOfOrder} is out of input order (or doubled)`).toBe(-1);
  }
  const seen = new Map<string, number>();
  for (const l of [...output, ...errors]) seen.set(l.custom_id, (seen.get(l.custom_id) ?? 0) + 1);
  const doubled = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
  const lost = input.filter((l) => !seen.has(l.custom_id)).map((l) => l.custom_id);
  expect({ doubled: doubled.slice(0, 10), lost: lost.slice(0, 10) }).toEqual({ doubled: [], lost: [] });
}

export function completionOf(line: OutputLine): ExpectedCompletion {
  const body = line.response!.body;
  const choice = body.choices[0]!;
  return {
    text: (body.object === "chat.completion" ? choice.message?.content : choice.text) ?? "",
    finishReason: choice.finish_reason,
    promptTokens: body.usage.prompt_tokens,
    completionTokens: body.usage.completion_tokens,
  };
}

/** Every line is a 200 response of the endpoint's object type whose completion is the reference's. */
export function expectMatchesReference(input: readonly RequestLine[], output: readonly OutputLine[], expected: Map<string, ExpectedCompletion>): void {
  const url = new Map(input.map((l) => [l.custom_id, l.url]));
  const mismatches: unknown[] = [];
  for (const line of output) {
    expect(line.error, `${line.custom_id} has an error`).toBeNull();
    expect(line.response?.status_code).toBe(200);
    const body = line.response!.body;
    expect(body.object).toBe(url.get(line.custom_id) === "/v1/chat/completions" ? "chat.completion" : "text_completion");
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
    const got = completionOf(line);
    const want = expected.get(line.custom_id);
    if (JSON.stringify(got) !== JSON.stringify(want)) mismatches.push({ custom_id: line.custom_id, got, want });
  }
  expect(mismatches.slice(0, 5), `${mismatches.length} of ${output.length} completions differ from the engine alone`).toEqual([]);
}
