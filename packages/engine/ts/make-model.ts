// Writes a Hugging Face model directory with random weights, so tests, the demo
// and benchmarks have models without any download: config.json,
// generation_config.json, the weights as safetensors (sharded past
// maxShardBytes), and for tokenizer "gemma" the bundled Gemma tokenizer files.
//
// The weights depend only on (seed, preset, overrides, dtype): every tensor draws
// from its own stream keyed by the seed and its name.
import { copyFile, mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { InvalidArgumentError } from "./errors.js";
import type { ModelDType, PresetName, TokenizerChoice } from "./model-presets.js";
import { FLOAT_FIELDS, planModel } from "./model-plan.js";
import { NormalishRandom } from "./normalish-random.js";
import { toPythonJson } from "./python-json.js";
import { INDEX_FILE_NAME, writeSafetensors, type TensorSource } from "./safetensors-writer.js";

export interface MakeModelOptions {
  /** Directory to write; created if missing. It must be empty unless `overwrite` is set. */
  dir: string;
  /** Default "tiny-gemma". */
  preset?: PresetName;
  /** Default: the preset's ("f32" for the tiny presets, "bf16" for the full-size ones). */
  dtype?: ModelDType;
  /** Default 0. */
  seed?: number;
  /** config.json fields to change, by their Hugging Face names (e.g. { num_key_value_heads: 4 }). */
  overrides?: Record<string, unknown>;
  /** Default: the preset's: "gemma" for tiny-gemma, tiny-gemma3 and the full-size Gemma presets, else "none" (no tokenizer files). */
  tokenizer?: TokenizerChoice;
  /** Split the weights into shards of at most this many bytes. Default 5e9, as transformers 4 does. */
  maxShardBytes?: number;
  /** Write into a non-empty directory, replacing the files a generated model has. */
  overwrite?: boolean;
}

export interface MadeModel {
  dir: string;
  preset: PresetName;
  architecture: string;
  dtype: ModelDType;
  parameterCount: number;
  /** Bytes of weight data. */
  weightBytes: number;
  /** Files written, relative to dir. */
  files: string[];
}

const DEFAULT_MAX_SHARD_BYTES = 5e9;
const GENERATED_FILE = /^(config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|.*\.safetensors|model\.safetensors\.index\.json)(\.tmp-\d+)?$/;

export async function makeModel(options: MakeModelOptions): Promise<MadeModel> {
  if (typeof options?.dir !== "string" || options.dir.length === 0) {
    throw new InvalidArgumentError("dir: the directory to write the model to is required");
  }
  const seed = options.seed ?? 0;
  if (typeof seed !== "number" || !Number.isSafeInteger(seed) || seed < 0) {
    throw new InvalidArgumentError(`seed: must be a non-negative integer, got ${JSON.stringify(seed)}`);
  }
  const maxShardBytes = options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (typeof maxShardBytes !== "number" || !(maxShardBytes > 0)) {
    throw new InvalidArgumentError(`maxShardBytes: must be a positive number, got ${JSON.stringify(maxShardBytes)}`);
  }
  const plan = await planModel(options);
  await prepareDir(options.dir, options.overwrite === true);

  const sources: TensorSource[] = plan.tensors.map((t) => ({
    name: t.name,
    shape: t.shape,
    createFiller: () => {
      const random = NormalishRandom.forTensor(seed, t.name);
      return (out) => random.fill(out, t.mean, t.std);
    },
  }));
  const weights = await writeSafetensors(options.dir, sources, {
    dtype: plan.dtype === "f32" ? "F32" : "BF16",
    maxShardBytes,
  });

  const files = [...weights.files];
  if (plan.tokenizer) {
    for (const f of plan.tokenizer.files) {
      await copyFile(join(plan.tokenizer.dir, f), join(options.dir, f));
      files.push(f);
    }
  }
  await writeJson(join(options.dir, "generation_config.json"), plan.generationConfig);
  // config.json last: a directory with one is complete.
  await writeJson(join(options.dir, "config.json"), plan.config);
  files.push("generation_config.json", "config.json");

  return {
    dir: options.dir,
    preset: plan.preset,
    architecture: plan.architecture,
    dtype: plan.dtype,
    parameterCount: plan.parameterCount,
    weightBytes: weights.totalBytes,
    files,
  };
}

async function prepareDir(dir: string, overwrite: boolean): Promise<void> {
  const info = await stat(dir).catch(() => null);
  if (info && !info.isDirectory()) {
    throw new InvalidArgumentError(`dir: ${dir} exists and is not a directory`);
  }
  if (!info) {
    await mkdir(dir, { recursive: true });
    return;
  }
  const entries = await readdir(dir);
  if (entries.length === 0) return;
  if (!overwrite) {
    throw new InvalidArgumentError(
      `dir: ${dir} is not empty; choose a new directory, or pass overwrite (--force) to replace a generated model there`,
    );
  }
  const foreign = entries.filter((e) => !GENERATED_FILE.test(e));
  if (foreign.length > 0) {
    throw new InvalidArgumentError(
      `dir: ${dir} holds files a generated model does not have (${foreign.slice(0, 3).join(", ")}); ` +
        "refusing to overwrite it",
    );
  }
  // Old weights would otherwise sit beside new ones (a single file beside new shards, or the reverse).
  for (const e of entries) {
    if (e.endsWith(".safetensors") || e === INDEX_FILE_NAME || e === "config.json" || /\.tmp-\d+$/.test(e)) {
      await rm(join(dir, e));
    }
  }
}

async function writeJson(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, toPythonJson(value, FLOAT_FIELDS));
  await rename(tmp, path);
}
