// The ranges of a request body's numeric fields: one definition, read by parseRequestBody
// (so ingest at the coordinator and the worker agree) and matching what the engine's own
// checks accept (engine/ts/engine.ts nativeRequest, engine/src/sample/sampler.cpp
// sampling_params_validate: int32 fields, temperature >= 0, top_p in (0, 1], min_p in
// [0, 1]). A value the engine would reject fails at ingest with the line's number
// instead of failing line by line once the batch runs.

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

export interface NumberRange {
  min: number;
  max: number;
  /** min itself is not allowed (top_p > 0). */
  minExclusive?: boolean;
  integer: boolean;
}

export const REQUEST_LIMITS = {
  /** max_tokens / max_completion_tokens: the engine's maxTokens is an int32 >= 1. */
  max_tokens: { min: 1, max: INT32_MAX, integer: true },
  /** OpenAI's range (the engine takes any finite value >= 0). */
  temperature: { min: 0, max: 2, integer: false },
  top_p: { min: 0, max: 1, minExclusive: true, integer: false },
  /** -1 (vLLM's "off") and 0 both mean off; the engine's topK is an int32 >= 0. */
  top_k: { min: -1, max: INT32_MAX, integer: true },
  min_p: { min: 0, max: 1, integer: false },
  /** Line-level priority (extension): the engine's priority is an int32. */
  priority: { min: INT32_MIN, max: INT32_MAX, integer: true },
  /** Choices per line (n): each runs as its own engine request. */
  n: { min: 1, max: 128, integer: true },
  /** top_logprobs on chat lines, logprobs (a count) on completion lines. */
  top_logprobs: { min: 0, max: 20, integer: true },
  /** OpenAI's ranges; the engine applies them over the tokens a sequence produced. */
  presence_penalty: { min: -2, max: 2, integer: false },
  frequency_penalty: { min: -2, max: 2, integer: false },
  /** vLLM's repetition_penalty (extension): > 0, 1 = off. */
  repetition_penalty: { min: 0, max: 10, minExclusive: true, integer: false },
  /** Token ids of a completion prompt given as ids: int32 >= 0 (the worker checks the vocabulary). */
  prompt_token_id: { min: 0, max: INT32_MAX, integer: true },
} as const satisfies Record<string, NumberRange>;

/** Text of a range for error messages: "an integer from 1 to 2147483647", "a number greater than 0 and at most 1". */
export function describeRange(r: NumberRange): string {
  const kind = r.integer ? "an integer" : "a number";
  if (r.minExclusive) return `${kind} greater than ${r.min} and at most ${r.max}`;
  return `${kind} from ${r.min} to ${r.max}`;
}

export function inRange(v: number, r: NumberRange): boolean {
  if (r.integer && !Number.isSafeInteger(v)) return false;
  if (!Number.isFinite(v)) return false;
  return (r.minExclusive ? v > r.min : v >= r.min) && v <= r.max;
}
