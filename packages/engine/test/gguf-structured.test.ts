// Structured output on the real Gemma 3 270M instruct GGUF (CPU engine, greedy,
// through Gemma 3's chat template): extraction prompts under a json_schema give
// JSON that parses, validates (ajv) and is sensible: every extracted string is
// taken from the text it was asked about. (Ages are not checked: the 270M model
// gets some wrong, which the grammar neither causes nor can fix.) The vocabulary comes from the GGUF's tokenizer.ggml.tokens.
import { readFileSync } from "node:fs";
import { join } from "node:path";

import * as ajvModule from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { ChatTemplate } from "../ts/chat-template.js";
import { gemmaTokenizerFiles } from "../ts/gemma-tokenizer-files.js";
import { Engine, Tokenizer } from "../ts/index.js";
import { realGgufPath } from "./real-gguf.js";

type AjvClass = new (opts: object) => { compile(schema: object): (data: unknown) => boolean };
const Ajv2020 = ((ajvModule as unknown as { default: { default?: AjvClass } & AjvClass }).default.default ??
  (ajvModule as unknown as { default: AjvClass }).default) as AjvClass;

const PERSON = {
  type: "object",
  properties: { name: { type: "string" }, age: { type: "integer" }, city: { type: "string" } },
  required: ["name", "age", "city"],
  additionalProperties: false,
};
const PEOPLE_TEXTS = [
  "Alice is 30 years old and lives in Paris.",
  "Bob, a 45-year-old carpenter, moved to Berlin last year.",
  "My name is Carla, I am 22, and I live in Madrid.",
  "Dmitri (age 61) has spent his whole life in Moscow.",
];
const ITEMS = {
  type: "object",
  properties: { items: { type: "array", items: { type: "string" }, minItems: 1, maxItems: 5 } },
  required: ["items"],
  additionalProperties: false,
};
const SHOPPING: Array<[string, string[]]> = [
  ["For the picnic we bought apples, bread and cheese.", ["apples", "bread", "cheese"]],
  ["Please pick up milk, eggs and butter on your way home.", ["milk", "eggs", "butter"]],
];

let engine: Engine;
let tok: Tokenizer;
let chat: ChatTemplate;

beforeAll(async () => {
  const gguf = realGgufPath();
  tok = await Tokenizer.load(gguf);
  const files = await gemmaTokenizerFiles();
  chat = ChatTemplate.compile((JSON.parse(readFileSync(join(files.dir, "tokenizer_config.json"), "utf8")) as { chat_template: string }).chat_template);
  engine = await Engine.load({ modelDir: gguf, threads: 2, kvCacheBlocks: 512, maxModelLen: 1024 });
});
afterAll(async () => {
  await engine?.close();
});

async function ask(question: string, schema: object): Promise<{ text: string; finishReason: string }> {
  const text = chat.render([{ role: "user", content: question }], { addGenerationPrompt: true, specialTokens: { bos_token: "<bos>" } });
  const r = await engine.generate({ prompt: tok.encode(text, { addSpecialTokens: false }), temperature: 0, maxTokens: 60, responseFormat: { type: "json_schema", schema } });
  return { text: tok.decode(r.tokens, { skipSpecialTokens: true }), finishReason: r.finishReason };
}

describe("Gemma 3 270M GGUF under a json_schema", () => {
  it("extracts people: valid JSON whose strings come from the text", async () => {
    const validate = new Ajv2020({ strict: false }).compile(PERSON);
    const answers = await Promise.all(PEOPLE_TEXTS.map((t) => ask(`Extract the person's name, age and city as JSON.\n\n${t}`, PERSON)));
    answers.forEach((a, i) => {
      expect(a.finishReason).toBe("stop");
      const value = JSON.parse(a.text) as { name: string; age: number; city: string };
      expect(validate(value), a.text).toBe(true);
      expect(value.name.length).toBeGreaterThan(0);
      expect(PEOPLE_TEXTS[i]).toContain(value.name);
      expect(PEOPLE_TEXTS[i]).toContain(value.city);
    });
    console.log(answers.map((a) => a.text).join("\n"));
  });

  it("lists items: an array of strings holding every item of the text", async () => {
    const validate = new Ajv2020({ strict: false }).compile(ITEMS);
    for (const [t, want] of SHOPPING) {
      const a = await ask(`List the things that were bought or should be bought, as JSON.\n\n${t}`, ITEMS);
      const value = JSON.parse(a.text) as { items: string[] };
      expect(validate(value), a.text).toBe(true);
      expect(value.items.map((x) => x.toLowerCase()), a.text).toEqual(expect.arrayContaining(want));
      console.log(a.text);
    }
  });
});
