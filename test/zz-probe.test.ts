import { test } from "vitest";
import { Engine, Tokenizer } from "@batchgen/engine";
import { e2eModelDir } from "./support/e2e-model.js";
test("probe", async () => {
  const dir = await e2eModelDir();
  const tok = await Tokenizer.fromDir(dir);
  const chat = tok.applyChatTemplate([{ role: "user", content: "hello world\n\tok" }], { addGenerationPrompt: true });
  const ids = tok.encode(chat, { addSpecialTokens: false });
  console.log(chat, ids, tok.encode("hi there"), tok.decode(tok.encode("héllo wörld"), { skipSpecialTokens: true }), tok.eosTokenIds, tok.bosTokenId, tok.vocabSize);
  const e = await Engine.load({ modelDir: dir, device: "cpu", threads: 1, maxModelLen: 512, kvCacheBlocks: 2048, deterministic: true });
  console.log(e.model);
  const r = await e.generate({ prompt: ids, maxTokens: 16, temperature: 0 });
  console.log(r, JSON.stringify(tok.decode(r.tokens, { skipSpecialTokens: true })));
  await e.close();
});
