// The random-weight demo model (makeModel preset "tiny-gemma"), made once into the
// cache folder; a half-written one (interrupted) is made again.
import { existsSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { DEMO_MODEL } from "./defaults.js";

const ENGINE_TOKENIZER = "@batchgen/engine/tokenizer";

export async function ensureDemoModel(dir: string, say: (line: string) => void): Promise<void> {
  if (existsSync(join(dir, "config.json")) && existsSync(join(dir, "tokenizer.json"))) return;
  say(`creating the random-weight demo model ${DEMO_MODEL} in ${dir} (once)`);
  const { makeModel } = (await import(ENGINE_TOKENIZER)) as typeof import("@batchgen/engine/tokenizer");
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await makeModel({ dir: tmp, preset: DEMO_MODEL });
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
}
