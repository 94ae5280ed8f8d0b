// The OpenAI response bodies a batch output line carries: chat.completion for
// /v1/chat/completions, text_completion for /v1/completions, both with usage
// (completion_tokens counts every choice), n choices, and logprobs in each
// endpoint's own shape when the line asked for them.
//
// Ids are `chatcmpl-` / `cmpl-` and 24 hex digits: 16 random per process (drawn again
// every 2^32 ids) and an 8-digit counter, so a line costs no random bytes and ids stay
// unique across workers (64 random bits a prefix) and within one.
import { randomBytes } from "node:crypto";

export type FinishReason = "stop" | "length";

/** One token's logprob as the worker hands it over: its text and bytes, and its best alternatives. */
export interface TokenLogprobInfo {
  token: string;
  bytes: number[];
  logprob: number;
  top: Array<{ token: string; bytes: number[]; logprob: number }>;
}

export interface Choice {
  text: string;
  finishReason: FinishReason;
  /** Present when the line asked for logprobs. */
  logprobs?: TokenLogprobInfo[];
}

export interface Completion {
  kind: "chat" | "completion";
  model: string;
  /** Choice 0 (the fast path): text and finish reason. */
  text: string;
  finishReason: FinishReason;
  /** Choice 0's logprobs, when asked for. */
  logprobs?: TokenLogprobInfo[];
  /** Choices 1..n-1 when the line asked for n > 1. */
  moreChoices?: Choice[];
  promptTokens: number;
  completionTokens: number;
  /** Defaults: a fresh id with OpenAI's prefix, the current time. */
  id?: string;
  created?: number;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: Array<{ token: string; logprob: number; bytes: number[] }>;
}

export interface ChatCompletionBody {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: Array<{
    index: number;
    message: { role: "assistant"; content: string; refusal: null };
    logprobs: { content: ChatTokenLogprob[]; refusal: null } | null;
    finish_reason: FinishReason;
  }>;
  usage: Usage;
}

interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Array<Record<string, number>>;
  text_offset: number[];
}

export interface TextCompletionBody {
  id: string;
  object: "text_completion";
  created: number;
  model: string;
  choices: Array<{ index: number; text: string; logprobs: CompletionLogprobs | null; finish_reason: FinishReason }>;
  usage: Usage;
}

function chatLogprobs(lp: TokenLogprobInfo[] | undefined): ChatCompletionBody["choices"][number]["logprobs"] {
  if (lp === undefined) return null;
  return {
    content: lp.map((t) => ({
      token: t.token,
      logprob: t.logprob,
      bytes: t.bytes,
      top_logprobs: t.top.map((a) => ({ token: a.token, logprob: a.logprob, bytes: a.bytes })),
    })),
    refusal: null,
  };
}

function completionLogprobs(lp: TokenLogprobInfo[] | undefined): CompletionLogprobs | null {
  if (lp === undefined) return null;
  const offsets: number[] = [];
  let at = 0;
  for (const t of lp) {
    offsets.push(at);
    at += t.token.length;
  }
  return {
    tokens: lp.map((t) => t.token),
    token_logprobs: lp.map((t) => t.logprob),
    top_logprobs: lp.map((t) => Object.fromEntries(t.top.map((a) => [a.token, a.logprob]))),
    text_offset: offsets,
  };
}

function allChoices(c: Completion): Choice[] {
  const first: Choice = { text: c.text, finishReason: c.finishReason };
  if (c.logprobs !== undefined) first.logprobs = c.logprobs;
  return [first, ...(c.moreChoices ?? [])];
}

let idPrefix = "";
let idCounter = 0x1_0000_0000;

/** The next 24 hex digits of a response id. */
export function nextResponseIdHex(): string {
  if (idCounter >= 0x1_0000_0000) {
    idPrefix = randomBytes(8).toString("hex");
    idCounter = 0;
  }
  return idPrefix + (idCounter++).toString(16).padStart(8, "0");
}

export function buildResponseBody(c: Completion): ChatCompletionBody | TextCompletionBody {
  const created = c.created ?? Math.floor(Date.now() / 1000);
  const usage: Usage = {
    prompt_tokens: c.promptTokens,
    completion_tokens: c.completionTokens,
    total_tokens: c.promptTokens + c.completionTokens,
  };
  if (c.kind === "chat") {
    return {
      id: c.id ?? `chatcmpl-${nextResponseIdHex()}`,
      object: "chat.completion",
      created,
      model: c.model,
      choices: allChoices(c).map((ch, index) => ({
        index,
        message: { role: "assistant", content: ch.text, refusal: null },
        logprobs: chatLogprobs(ch.logprobs),
        finish_reason: ch.finishReason,
      })),
      usage,
    };
  }
  return {
    id: c.id ?? `cmpl-${nextResponseIdHex()}`,
    object: "text_completion",
    created,
    model: c.model,
    choices: allChoices(c).map((ch, index) => ({
      index,
      text: ch.text,
      logprobs: completionLogprobs(ch.logprobs),
      finish_reason: ch.finishReason,
    })),
    usage,
  };
}

/**
 * buildResponseBody's body as JSON text, written directly (the same text JSON.stringify
 * gives for it, key order included): the per-line path builds no object tree for it.
 */
export function responseBodyJson(c: Completion): string {
  // Several choices or logprobs: the object tree (these lines are the few).
  if (c.logprobs !== undefined || (c.moreChoices?.length ?? 0) > 0) return JSON.stringify(buildResponseBody(c));
  const created = c.created ?? Math.floor(Date.now() / 1000);
  const usage =
    `"usage":{"prompt_tokens":${c.promptTokens},"completion_tokens":${c.completionTokens},` +
    `"total_tokens":${c.promptTokens + c.completionTokens}}}`;
  if (c.kind === "chat") {
    const id = c.id ?? `chatcmpl-${nextResponseIdHex()}`;
    return (
      `{"id":${JSON.stringify(id)},"object":"chat.completion","created":${created},"model":${JSON.stringify(c.model)},` +
      `"choices":[{"index":0,"message":{"role":"assistant","content":${JSON.stringify(c.text)},"refusal":null},` +
      `"logprobs":null,"finish_reason":"${c.finishReason}"}],${usage}`
    );
  }
  const id = c.id ?? `cmpl-${nextResponseIdHex()}`;
  return (
    `{"id":${JSON.stringify(id)},"object":"text_completion","created":${created},"model":${JSON.stringify(c.model)},` +
    `"choices":[{"index":0,"text":${JSON.stringify(c.text)},"logprobs":null,"finish_reason":"${c.finishReason}"}],${usage}`
  );
}
