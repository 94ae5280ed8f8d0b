// The prefix key of a request line: a short hash of the leading part of its prompt, so
// that ingest can pack lines that will share an engine's cached prompt blocks into the
// same shards. No tokenizer here: the key is taken from text.
//  - chat: the role and content of every message but the last (a shared system prompt,
//    few-shot turns, a document sent before the question); a one-message chat keys on
//    the first `chars` characters of that message;
//  - completion: the first `chars` characters of the prompt (or its first chars/4 ids).
// Lines with equal keys usually share a long prefix; lines with different keys may still
// share a shorter one (the engine finds that by itself).
import { createHash } from "node:crypto";
import type { ParsedRequest } from "@batchgen/core";

export const DEFAULT_PREFIX_KEY_CHARS = 512;

export function prefixKey(request: ParsedRequest, chars = DEFAULT_PREFIX_KEY_CHARS): string {
  const h = createHash("sha1");
  h.update(request.kind);
  if (request.messages && request.messages.length > 0) {
    const m = request.messages;
    const leading = m.length > 1 ? m.slice(0, -1) : [{ ...m[0]!, content: m[0]!.content.slice(0, chars) }];
    for (const msg of leading) h.update(`\u0000${msg.role}\u0001${msg.content}`);
  } else if (request.prompt !== undefined) {
    h.update(`\u0000${request.prompt.slice(0, chars)}`);
  } else if (request.promptTokenIds) {
    h.update(`\u0002${request.promptTokenIds.slice(0, Math.ceil(chars / 4)).join(",")}`);
  }
  return h.digest("hex").slice(0, 16);
}
