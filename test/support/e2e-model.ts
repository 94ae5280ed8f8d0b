// The model every end-to-end test serves: tiny-llama's shapes with random weights
// (packages/engine makeModel) and the byte-level tokenizer of byte-level-tokenizer.ts,
// so a 2,000-line batch runs in seconds on the CPU engine. Made once per machine in the
// OS temp folder (keyed by what it is made from); the directory's name is the model name
// requests use.
import { makeModel } from "@batchgen/engine/tokenizer";
import { BYTE_LEVEL_VOCAB_SIZE, writeByteLevelTokenizer } from "./byte-level-tokenizer.js";
import { sharedModelDir } from "./shared-model-dir.js";

export const E2E_MODEL = "e2e-llama-v2";
/** Context length the workers and the reference engine are started with. */
export const E2E_MAX_MODEL_LEN = 512;

export function e2eModelDir(): Promise<string> {
  return sharedModelDir(E2E_MODEL, async (dir) => {
    await makeModel({
      dir,
      preset: "tiny-llama",
      seed: 7,
      overrides: { vocab_size: BYTE_LEVEL_VOCAB_SIZE, max_position_embeddings: E2E_MAX_MODEL_LEN },
    });
    await writeByteLevelTokenizer(dir);
  });
}

/**
 * The same architecture and tokenizer, ~100x the compute per token (hidden 256, 8
 * layers): for tests that must watch a job for seconds (metrics scraped while shards
 * wait and run) without thousands of lines.
 */
export const E2E_SLOW_MODEL = "e2e-llama-slow-v1";

export function e2eSlowModelDir(): Promise<string> {
  return sharedModelDir(E2E_SLOW_MODEL, async (dir) => {
    await makeModel({
      dir,
      preset: "tiny-llama",
      seed: 11,
      overrides: {
        vocab_size: BYTE_LEVEL_VOCAB_SIZE,
        max_position_embeddings: E2E_MAX_MODEL_LEN,
        hidden_size: 256,
        intermediate_size: 1024,
        num_hidden_layers: 8,
        num_attention_heads: 8,
        num_key_value_heads: 4,
        head_dim: 32,
      },
    });
    await writeByteLevelTokenizer(dir);
  });
}
