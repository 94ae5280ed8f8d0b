// A tokenizer double for unit tests: one token per character (id = code point + 10),
// plus whole-word tokens for a few multi-character strings, BOS = 2, EOS = 1.
// Chat template: "<bos>" then "[role]content\n" per message, "[assistant]" as the
// generation prompt.
import type { ChatMessage } from "@batchgen/engine/tokenizer";
import type { WorkerTokenizer } from "../../src/worker-tokenizer.js";

export const BOS = 2;
export const EOS = 1;
const SPECIAL: Record<number, string> = { [BOS]: "<bos>", [EOS]: "<eos>" };

export class CharTokenizerDouble implements WorkerTokenizer {
  /** Multi-character strings that are one token each, e.g. "END" or "\n\n". */
  constructor(private readonly words: string[] = []) {}

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const ids: number[] = opts.addSpecialTokens === false ? [] : [BOS];
    let i = 0;
    while (i < text.length) {
      if (text.startsWith("<bos>", i)) {
        ids.push(BOS);
        i += 5;
        continue;
      }
      const w = this.words.findIndex((word) => text.startsWith(word, i));
      if (w >= 0) {
        ids.push(100_000 + w);
        i += this.words[w]!.length;
        continue;
      }
      ids.push(text.codePointAt(i)! + 10);
      i += 1;
    }
    return ids;
  }

  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    return ids
      .map((id) => {
        if (SPECIAL[id] !== undefined) return opts.skipSpecialTokens ? "" : SPECIAL[id];
        if (id >= 100_000) return this.words[id - 100_000] ?? "";
        return String.fromCodePoint(id - 10);
      })
      .join("");
  }

  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    let out = "<bos>";
    for (const m of messages) {
      if (out === "<bos>" && m.role === "assistant") throw new Error("conversation must start with a user or system turn");
      const content = typeof m.content === "string" ? m.content : m.content.map((p) => p.text).join("");
      out += `[${m.role}]${content}\n`;
    }
    return opts.addGenerationPrompt ? `${out}[assistant]` : out;
  }
}
