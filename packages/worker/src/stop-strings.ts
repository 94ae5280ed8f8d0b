// OpenAI `stop` strings on an engine that only knows stop *token ids*.
//
// A stop string that is exactly one token of the vocabulary becomes an engine stop
// token id, so generation ends right there. Every stop string (one token or not) is
// also searched for in the decoded text: a string spanning several tokens, or one
// that appears inside a longer token, cannot stop the engine early, so the engine
// runs on to max_tokens / EOS and the text is cut afterwards. The reply then reads as
// OpenAI's does (text up to, not including, the first stop string; finish_reason
// "stop"), and usage counts only the tokens up to the one that completed the stop
// string; the engine time spent past it is lost, which is the price of not
// streaming tokens out of the engine.
import type { WorkerTokenizer } from "./worker-tokenizer.js";

export interface StopPlan {
  /** Stop strings that are single tokens, as engine stop token ids. */
  stopTokenIds: number[];
  /** Every stop string, searched for in the decoded text. */
  textStops: string[];
}

export function planStopStrings(stops: readonly string[], tokenizer: Pick<WorkerTokenizer, "encode" | "decode">): StopPlan {
  const stopTokenIds = new Set<number>();
  const textStops: string[] = [];
  for (const stop of stops) {
    if (stop.length === 0) continue;
    textStops.push(stop);
    const ids = tokenizer.encode(stop, { addSpecialTokens: false });
    if (ids.length === 1 && tokenizer.decode(ids, { skipSpecialTokens: false }) === stop) stopTokenIds.add(ids[0]!);
  }
  return { stopTokenIds: [...stopTokenIds], textStops };
}

/** Index of the first occurrence of any stop string in text, or -1. */
export function findFirstStop(text: string, stops: readonly string[]): number {
  let first = -1;
  for (const stop of stops) {
    const at = text.indexOf(stop);
    if (at !== -1 && (first === -1 || at < first)) first = at;
  }
  return first;
}

export interface StoppedText {
  text: string;
  /** True when a stop string was found (and cut off). */
  stopped: boolean;
  /** Generated tokens up to and including the one that completed the stop string. */
  tokenCount: number;
}

/**
 * Decodes tokens and cuts the text at the first stop string. tokenCount is the
 * smallest prefix of tokens whose text already holds a stop string (binary search:
 * "the prefix's text holds a stop" only turns from false to true as it grows).
 */
export function applyStopStrings(tokens: readonly number[], stops: readonly string[], decode: (ids: number[]) => string): StoppedText {
  const text = decode(tokens.slice());
  if (stops.length === 0) return { text, stopped: false, tokenCount: tokens.length };
  const at = findFirstStop(text, stops);
  if (at === -1) return { text, stopped: false, tokenCount: tokens.length };
  let lo = 1;
  let hi = tokens.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (findFirstStop(decode(tokens.slice(0, mid)), stops) !== -1) hi = mid;
    else lo = mid + 1;
  }
  return { text: text.slice(0, at), stopped: true, tokenCount: lo };
}
