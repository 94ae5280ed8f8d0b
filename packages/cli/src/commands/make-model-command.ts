// batchgen make-model DIR: a random-weight model directory (Hugging Face layout).
import { Command } from "commander";
import { CliError } from "../cli-error.js";
import type { Output } from "../output.js";

const ENGINE_TOKENIZER = "@batchgen/engine/tokenizer";

export function makeModelCommand(out: Output): Command {
  return new Command("make-model")
    .description("write a random-weight model (config, safetensors, tokenizer) for tests and demos")
    .argument("<dir>", "directory to write (must be empty unless --overwrite)")
    .option("--preset <name>", "tiny-gemma | gemma-2b | gemma-7b | tiny-llama | tiny-qwen2 | tiny-mistral", "tiny-gemma")
    .option("--dtype <dtype>", "f32 | bf16 (default: the preset's)")
    .option("--seed <n>", "weights seed", "0")
    .option("--overwrite", "replace a model already in dir")
    .action(async (dir: string, flags: { preset: string; dtype?: string; seed: string; overwrite?: boolean }) => {
      const { makeModel, PRESET_NAMES } = (await import(ENGINE_TOKENIZER)) as typeof import("@batchgen/engine/tokenizer");
      if (!(PRESET_NAMES as readonly string[]).includes(flags.preset)) {
        throw new CliError(`--preset must be one of ${PRESET_NAMES.join(", ")}; got ${flags.preset}.`);
      }
      if (flags.dtype !== undefined && flags.dtype !== "f32" && flags.dtype !== "bf16") throw new CliError(`--dtype must be f32 or bf16; got ${flags.dtype}.`);
      const seed = Number(flags.seed);
      if (!Number.isSafeInteger(seed) || seed < 0) throw new CliError(`--seed must be a non-negative integer; got ${flags.seed}.`);
      const made = await makeModel({
        dir,
        preset: flags.preset as (typeof PRESET_NAMES)[number],
        seed,
        ...(flags.dtype ? { dtype: flags.dtype as "f32" | "bf16" } : {}),
        ...(flags.overwrite ? { overwrite: true } : {}),
      });
      out.result(`${made.dir}: ${made.preset} (${made.architecture}, ${made.dtype}), ${made.parameterCount} parameters, ${(made.weightBytes / 1e6).toFixed(1)} MB`);
    });
}
