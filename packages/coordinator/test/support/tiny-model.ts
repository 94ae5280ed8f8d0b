// The random-weight tiny-gemma model (packages/engine makeModel), made once per machine
// into the OS temp folder (the worker's tests use the same folder).
import { existsSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeModel } from "@batchgen/engine/tokenizer";

export async function tinyGemmaDir(): Promise<string> {
  const dir = join(tmpdir(), "batchgen-test-models", "tiny-gemma-seed0");
  if (existsSync(join(dir, "config.json"))) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await makeModel({ dir: tmp, preset: "tiny-gemma", seed: 0 });
  await rename(tmp, dir).catch(async (err: NodeJS.ErrnoException) => {
    await rm(tmp, { recursive: true, force: true });
    if (!existsSync(join(dir, "config.json"))) throw err;
  });
  return dir;
}
