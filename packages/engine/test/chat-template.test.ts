// Chat templates rendered by Tokenizer.applyChatTemplate against transformers'
// tokenizer.apply_chat_template on the same files: Gemma's <start_of_turn> template
// (from the bundled tokenizer_config.json), a chat_template.jinja that leans on
// Python's whitespace rules, and named templates.
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import type { ChatMessage } from "../ts/chat-template.js";
import { InvalidArgumentError, UnsupportedError } from "../ts/errors.js";
import { gemmaTokenizerFiles } from "../ts/gemma-tokenizer-files.js";
import { Tokenizer } from "../ts/tokenizer.js";
import { runPython } from "./run-python.js";

// Renders each job's conversations both ways (with and without the generation
// prompt); an error is reported as {error: message}.
const RENDER_ALL = `
import json, sys
from transformers import AutoTokenizer
out = {}
tokenizers = {}
for job in json.load(sys.stdin):
    tok = tokenizers.get(job["dir"]) or AutoTokenizer.from_pretrained(job["dir"])
    tokenizers[job["dir"]] = tok
    rows = []
    for conv in job["conversations"]:
        for agp in (True, False):
            try:
                text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=agp)
                ids = tok.apply_chat_template(conv, tokenize=True, add_generation_prompt=agp)
                ids = ids["input_ids"] if hasattr(ids, "keys") else ids
                rows.append({"text": text, "ids": list(ids)})
            except Exception as e:
                rows.append({"error": str(e)})
    out[job["key"]] = rows
print(json.dumps(out))
`;

const CONVERSATIONS: unknown[] = [
  [{ role: "user", content: "Hello" }],
  [
    { role: "system", content: "You are terse." },
    { role: "user", content: "What is 2+2?" },
    { role: "assistant", content: "  4  " },
    { role: "user", content: "And 3+3?\n" },
  ],
  [
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello!" },
  ],
  [{ role: "user", content: [{ type: "text", text: " first part " }, { type: "text", text: "second part" }] }],
  [
    { role: "system", content: [{ type: "text", text: "System as parts." }] },
    { role: "user", content: [{ type: "text", text: "ok" }] },
  ],
  // Python's whitespace: U+FEFF is kept, \x85 and \x1c are stripped.
  [{ role: "user", content: "\ufeff byte-order mark and NEL \u0085" }],
  [{ role: "user", content: "\u001c\u3000 ideographic space \u2003" }],
  [{ role: "user", content: "日本語 🤗 <start_of_turn> inside" }],
  // Refused by the template: roles must alternate, starting with the user.
  [
    { role: "user", content: "a" },
    { role: "user", content: "b" },
  ],
  [{ role: "assistant", content: "I speak first" }],
  [
    { role: "system", content: "s" },
    { role: "assistant", content: "a" },
  ],
  [{ role: "user", content: 5 }],
];

// A template of our own that uses every Python strip form.
const STRIP_TEMPLATE = [
  "{%- for m in messages -%}",
  "[{{ m['role'] | upper }}]{{ m['content'] | trim }}|{{ m['content'].strip() }}|{{ m['content'].lstrip() }}|",
  "{{ m['content'].rstrip() }}|{{ m['content'].strip('x') }}|{{ m['content'].strip(none) }}{{ eos_token }}\n",
  "{% endfor -%}",
  "{%- if add_generation_prompt %}[ASSISTANT]{% endif -%}",
].join("");
const STRIP_CONVERSATIONS: unknown[] = [
  ...CONVERSATIONS.filter((c) => (c as ChatMessage[]).every((m) => typeof m.content === "string")),
  [{ role: "user", content: 5 }], // 5 | trim is "5"; (5).strip() fails
  [{ role: "user", content: " \ufeff hi \u0085" }],
  [{ role: "user", content: "xx hi xx" }, { role: "assistant", content: "\u001c\u001dsep\u001f" }],
  [{ role: "system", content: "\u3000wide\u3000\u00a0" }],
];

let root: string;
let gemmaDir: string;
let stripDir: string;
let namedDir: string;
let gemma: Tokenizer;
let py: Record<string, Array<{ text?: string; ids?: number[]; error?: string }>>;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "bg-chat-template-"));
  const files = await gemmaTokenizerFiles();
  gemmaDir = join(root, "gemma");
  stripDir = join(root, "strip");
  namedDir = join(root, "named");
  const config = JSON.parse(await readFile(join(files.dir, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;
  for (const d of [gemmaDir, stripDir, namedDir]) {
    await mkdir(d);
    await copyFile(join(files.dir, "tokenizer.json"), join(d, "tokenizer.json"));
  }
  await copyFile(join(files.dir, "tokenizer_config.json"), join(gemmaDir, "tokenizer_config.json"));
  // chat_template.jinja takes priority over the config's template.
  await copyFile(join(files.dir, "tokenizer_config.json"), join(stripDir, "tokenizer_config.json"));
  await writeFile(join(stripDir, "chat_template.jinja"), STRIP_TEMPLATE);
  // Named templates: "default" is the one used.
  await writeFile(
    join(namedDir, "tokenizer_config.json"),
    JSON.stringify({
      ...config,
      chat_template: [
        { name: "tool_use", template: "TOOLS{{ messages | length }}" },
        { name: "default", template: STRIP_TEMPLATE },
      ],
    }),
  );
  gemma = await Tokenizer.fromDir(gemmaDir);
  py = runPython(RENDER_ALL, [
    { key: "gemma", dir: gemmaDir, conversations: CONVERSATIONS },
    { key: "strip-ws", dir: stripDir, conversations: STRIP_CONVERSATIONS },
    { key: "named-ws", dir: namedDir, conversations: STRIP_CONVERSATIONS },
  ]) as typeof py;
}, 300_000);

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

function renderAll(tok: Tokenizer, conversations: unknown[]): Array<{ text?: string; ids?: number[]; error?: string }> {
  const rows: Array<{ text?: string; ids?: number[]; error?: string }> = [];
  for (const conv of conversations) {
    for (const agp of [true, false]) {
      try {
        const text = tok.applyChatTemplate(conv as ChatMessage[], { addGenerationPrompt: agp });
        const ids = tok.encodeChat(conv as ChatMessage[], { addGenerationPrompt: agp });
        rows.push({ text, ids });
      } catch (err) {
        expect(err).toBeInstanceOf(InvalidArgumentError);
        rows.push({ error: (err as Error).message });
      }
    }
  }
  return rows;
}

/** Our error is "chat template: <the template's message>"; transformers' is the message itself. */
function sameOutcome(ours: ReturnType<typeof renderAll>, theirs: typeof ours): void {
  expect(ours.length).toBe(theirs.length);
  for (const [i, row] of ours.entries()) {
    const ref = theirs[i]!;
    if (ref.error !== undefined) {
      expect(row.error, `row ${i}`).toBe(`chat template: ${ref.error}`);
    } else {
      expect(row, `row ${i}`).toEqual({ text: ref.text, ids: ref.ids });
    }
  }
}

describe("chat templates against transformers' apply_chat_template", () => {
  it("renders Gemma's <start_of_turn> format exactly, and refuses what it refuses", async () => {
    const tok = gemma;
    const ours = renderAll(tok, CONVERSATIONS);
    sameOutcome(ours, py.gemma!);
    // The shape itself, spelled out for one conversation.
    expect(ours[2]!.text).toBe(
      "<bos><start_of_turn>user\nYou are terse.\n\nWhat is 2+2?<end_of_turn>\n" +
        "<start_of_turn>model\n4<end_of_turn>\n" +
        "<start_of_turn>user\nAnd 3+3?<end_of_turn>\n" +
        "<start_of_turn>model\n",
    );
    expect(ours[16]!.error).toBe("chat template: Conversation roles must alternate user/assistant/user/assistant/...");
    expect(ours[22]!.error).toBe("chat template: Invalid content type");
  });

  it("strips with Python's whitespace and prefers chat_template.jinja", async () => {
    const tok = await Tokenizer.fromDir(stripDir);
    sameOutcome(renderAll(tok, STRIP_CONVERSATIONS), py["strip-ws"]!);
    expect(tok.applyChatTemplate([{ role: "user", content: " \ufeff hi \u0085" }])).toBe(
      "[USER]\ufeff hi|\ufeff hi|\ufeff hi \u0085| \ufeff hi| \ufeff hi \u0085|\ufeff hi<end_of_turn>\n",
    );
  });

  it("uses the template named default when there are several", async () => {
    const tok = await Tokenizer.fromDir(namedDir);
    sameOutcome(renderAll(tok, STRIP_CONVERSATIONS), py["named-ws"]!);
  });
});

describe("chat template errors", () => {
  it("gives clear errors for empty conversations, missing or unparsable templates", async () => {
    const tok = gemma;
    expect(() => tok.applyChatTemplate([])).toThrow(InvalidArgumentError);
    expect(() => tok.applyChatTemplate([])).toThrow(/empty conversation/);
    expect(() => tok.applyChatTemplate([{ content: "no role" } as unknown as ChatMessage])).toThrow(
      /messages\[0\]: must be an object with a string role/,
    );

    const bare = join(root, "bare");
    await mkdir(bare);
    await copyFile(join(gemmaDir, "tokenizer.json"), join(bare, "tokenizer.json"));
    const noTemplate = await Tokenizer.fromDir(bare);
    expect(noTemplate.hasChatTemplate).toBe(false);
    expect(() => noTemplate.applyChatTemplate([{ role: "user", content: "hi" }])).toThrow(
      /this model has no chat template/,
    );

    await writeFile(join(bare, "chat_template.jinja"), "{% for m in messages %}{{ m.content ");
    const broken = await Tokenizer.fromDir(bare);
    expect(() => broken.applyChatTemplate([{ role: "user", content: "hi" }])).toThrow(UnsupportedError);
    expect(() => broken.applyChatTemplate([{ role: "user", content: "hi" }])).toThrow(
      /chat_template\.jinja: the template cannot be parsed/,
    );
    // Plain encoding still works for a model whose template we cannot parse.
    expect(broken.encode("hi")).toEqual([2, 2202]);
  });
});
