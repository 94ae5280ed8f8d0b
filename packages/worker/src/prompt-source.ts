// Where prompt token ids come from, off the hot path of the event loop: tokenizing and
// rendering chat templates cost about 7-11 s per MB of prompt in JavaScript, and a lease
// of long prompts tokenized in one go on the main thread starved heartbeats until the
// coordinator dropped the stream and leased the same shard again, forever.
// InlinePrompts (a tokenizer object given by the caller: tests, the benchmark) works on
// the main thread but one line per event-loop turn; PromptPool (prompt-pool.ts) does the
// work in worker threads. Both refuse a prompt that cannot fit the context before
// tokenizing it (checkPromptChars).
import { setImmediate as nextTurn } from "node:timers/promises";
import { promptTokens, type PromptLimit, type PromptRequest } from "./prompt-tokens.js";
import type { WorkerTokenizer } from "./worker-tokenizer.js";

export interface PromptSource {
  /** The prompt's token ids; rejects with LineFailure for a prompt that cannot run. */
  tokens(request: PromptRequest): Promise<number[]>;
  close(): Promise<void>;
}

export class InlinePrompts implements PromptSource {
  constructor(
    private readonly tokenizer: WorkerTokenizer,
    private readonly limit?: PromptLimit,
  ) {}

  async tokens(request: PromptRequest): Promise<number[]> {
    if (request.kind !== "chat" && request.promptTokenIds) return [...request.promptTokenIds];
    // One prompt per turn: timers (heartbeats) and messages run between them.
    await nextTurn();
    return promptTokens(request, this.tokenizer, this.limit);
  }

  async close(): Promise<void> {}
}
