#!/usr/bin/env node
// batchgen-make-model: writes a random-weight Hugging Face model directory.
//   node packages/engine/dist/make-model-cli.js --preset tiny-gemma --out DIR [--dtype bf16] [--seed N]
import { parseArgs } from "node:util";

import { InvalidArgumentError } from "./errors.js";
import { makeModel } from "./make-model.js";
import { PRESET_NAMES, type ModelDType, type PresetName, type TokenizerChoice } from "./model-presets.js";

const USAGE = `usage: make-model --out DIR [options]

Writes a Hugging Face model directory with random weights (config.json,
generation_config.json, safetensors, tokenizer files).

options:
  --out DIR             directory to write (created; must be empty unless --force)
  --preset NAME         ${PRESET_NAMES.join(" | ")} (default tiny-gemma)
  --dtype f32|bf16      weight dtype (default: f32 for tiny presets, bf16 for full-size ones)
  --seed N              non-negative integer seed (default 0)
  --tokenizer gemma|none  copy the bundled Gemma tokenizer (default: the preset's; gemma for
                        tiny-gemma, tiny-gemma3 and the full-size Gemma presets)
  --set KEY=VALUE       change a config.json field, VALUE as JSON (repeatable),
                        e.g. --set num_hidden_layers=4 --set rope_scaling=null
  --max-shard-size SIZE split weights into shards of at most SIZE bytes (e.g. 2GB, 500MB)
  --force               replace a generated model already in --out
  -h, --help            show this help`;

class UsageError extends Error {}

async function main(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        out: { type: "string" },
        preset: { type: "string" },
        dtype: { type: "string" },
        seed: { type: "string" },
        tokenizer: { type: "string" },
        set: { type: "string", multiple: true },
        "max-shard-size": { type: "string" },
        force: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) {
    console.log(USAGE);
    return;
  }
  if (!v.out) throw new UsageError("--out DIR is required");
  if (v.preset !== undefined && !(PRESET_NAMES as readonly string[]).includes(v.preset)) {
    throw new UsageError(`--preset: unknown preset "${v.preset}" (one of ${PRESET_NAMES.join(", ")})`);
  }
  if (v.dtype !== undefined && v.dtype !== "f32" && v.dtype !== "bf16") {
    throw new UsageError(`--dtype: must be f32 or bf16, got "${v.dtype}"`);
  }
  if (v.tokenizer !== undefined && v.tokenizer !== "gemma" && v.tokenizer !== "none") {
    throw new UsageError(`--tokenizer: must be gemma or none, got "${v.tokenizer}"`);
  }
  let seed: number | undefined;
  if (v.seed !== undefined) {
    if (!/^\d+$/.test(v.seed) || !Number.isSafeInteger(Number(v.seed))) {
      throw new UsageError(`--seed: must be a non-negative integer, got "${v.seed}"`);
    }
    seed = Number(v.seed);
  }
  const overrides: Record<string, unknown> = {};
  for (const item of v.set ?? []) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new UsageError(`--set: expected KEY=VALUE, got "${item}"`);
    const raw = item.slice(eq + 1);
    try {
      overrides[item.slice(0, eq)] = JSON.parse(raw);
    } catch {
      throw new UsageError(`--set ${item.slice(0, eq)}: VALUE must be JSON (a number, true, null, "text", {...}), got ${raw}`);
    }
  }
  const maxShardBytes = v["max-shard-size"] === undefined ? undefined : parseSize(v["max-shard-size"]);

  const made = await makeModel({
    dir: v.out,
    preset: v.preset as PresetName | undefined,
    dtype: v.dtype as ModelDType | undefined,
    seed,
    tokenizer: v.tokenizer as TokenizerChoice | undefined,
    overrides,
    maxShardBytes,
    overwrite: v.force === true,
  });
  console.log(
    `wrote ${made.preset} (${made.architecture}, ${(made.parameterCount / 1e6).toFixed(1)}M parameters, ${made.dtype}, ` +
      `${(made.weightBytes / 1e6).toFixed(1)} MB of weights) to ${made.dir}: ${made.files.join(", ")}`,
  );
}

function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`--max-shard-size: expected a size such as 2GB or 500MB, got "${text}"`);
  const unit = (m[2] ?? "b").toLowerCase();
  const factor: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };
  const bytes = Math.floor(Number(m[1]) * (factor[unit] as number));
  if (bytes <= 0) throw new UsageError(`--max-shard-size: must be positive, got "${text}"`);
  return bytes;
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof UsageError) {
    console.error(`make-model: ${err.message}\n\n${USAGE}`);
    process.exitCode = 2;
  } else if (err instanceof InvalidArgumentError) {
    console.error(`make-model: ${err.message}`);
    process.exitCode = 2;
  } else {
    console.error(`make-model: failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  }
});
