// The random-weight tiny-gemma model (packages/engine makeModel), shared by the
// coordinator's and the worker's tests.
import { makeModel } from "@batchgen/engine/tokenizer";
import { sharedModelDir } from "./shared-model-dir.js";

export function tinyGemmaDir(): Promise<string> {
  return sharedModelDir("tiny-gemma-seed0", (dir) => makeModel({ dir, preset: "tiny-gemma", seed: 0 }));
}
