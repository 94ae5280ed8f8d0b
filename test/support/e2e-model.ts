// The model every end-to-end test serves: tiny-llama's shapes with random weights
// (packages/engine makeModel) and the byte-level tokenizer of byte-level-tokenizer.ts,
// so a 2,000-line batch runs in seconds on the CPU engine. Made once per machine in the
// OS temp folder (keyed by what it is made from); the directory's name is the model name
// requests use.
import { existsSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeModel } from "@batchgen/engine/tokenizer";
import { BYTE_LEVEL_VOCAB_SIZE, writeByteLevelTokenizer } from "./byte-level-tokenizer.js";

export const E2E_MODEL = "e2e-llama-v2";
/** Context length the workers and the reference engine are started with. */
export const E2E_MAX_MODEL_LEN = 512;

export async function e2eModelDir(): Promise<string> {
  const dir = join(tmpdir(), "batchgen-test-models", E2E_MODEL);
  if (existsSync(join(dir, "config.json"))) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await makeModel({
    dir: tmp,
    preset: "tiny-llama",
    seed: 7,
    overrides: { vocab_size: BYTE_LEVEL_VOCAB_SIZE, max_position_embeddings: E2E_MAX_MODEL_LEN },
  });
  await writeByteLevelTokenizer(tmp);
  // config.json was written last by makeModel; the rename makes the folder appear whole.
  await rename(tmp, dir).catch(async (err: NodeJS.ErrnoException) => {
    await rm(tmp, { recursive: true, force: true });
    if (!existsSync(join(dir, "config.json"))) throw err;
  });
  return dir;
}
