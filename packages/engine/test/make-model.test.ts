// Generated model directories against Hugging Face transformers: every preset's
// config loads (the tiny ones with their weights, the real-size ones on the meta
// device), the safetensors headers are right, shards and their index agree, bf16
// is f32 rounded, and the same seed gives the same bytes.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { InvalidArgumentError } from "../ts/errors.js";
import { makeModel, type MadeModel, type MakeModelOptions } from "../ts/make-model.js";
import { FLOAT_FIELDS, planModel } from "../ts/model-plan.js";
import type { PresetName } from "../ts/model-presets.js";
import { toPythonJson } from "../ts/python-json.js";
import { Tokenizer } from "../ts/tokenizer.js";
import { runPython } from "./run-python.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const CLI = join(REPO, "packages/engine/dist/make-model-cli.js");
// These scripts run torch: one thread each.
const python = (script: string, input: unknown): unknown => runPython(script, input, { OMP_NUM_THREADS: "1" });

interface Header {
  headerBytes: number;
  fileBytes: number;
  metadata: unknown;
  tensors: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
}

async function readHeader(path: string): Promise<Header> {
  const fh = await open(path, "r");
  try {
    const prefix = Buffer.alloc(8);
    await fh.read(prefix, 0, 8, 0);
    const n = Number(prefix.readBigUInt64LE());
    const json = Buffer.alloc(n);
    await fh.read(json, 0, n, 8);
    const { __metadata__: metadata, ...tensors } = JSON.parse(json.toString("utf8")) as Record<string, unknown>;
    return { headerBytes: n, fileBytes: (await fh.stat()).size, metadata, tensors: tensors as Header["tensors"] };
  } finally {
    await fh.close();
  }
}

async function sha256(path: string): Promise<string> {
  return createHash("sha256").update(await readFile(path)).digest("hex");
}

// Loads each directory in transformers and reports what it found.
const LOAD_ALL = `
import json, sys, tempfile, os, torch
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig
from safetensors.torch import load_file
torch.manual_seed(0)
out = {}
for job in json.load(sys.stdin):
    d = job["dir"]
    cfg = AutoConfig.from_pretrained(d)
    with tempfile.TemporaryDirectory() as t:
        cfg.save_pretrained(t)
        resaved = json.load(open(os.path.join(t, "config.json")))
    model, info = AutoModelForCausalLM.from_pretrained(d, dtype="auto", output_loading_info=True)
    sd = model.state_dict()
    ids = torch.tensor([job["prompt"]])
    gen = model.generate(ids, max_new_tokens=32, do_sample=False, min_new_tokens=32)[0, len(job["prompt"]):].tolist()
    with torch.no_grad():
        logits = model(ids).logits.float()
    row = {
        "class": type(model).__name__,
        "modelType": cfg.model_type,
        "fields": {k: getattr(cfg, k, None) for k in job["fields"]},
        "ropeParameters": cfg.rope_parameters,
        "resavedKeys": sorted(resaved.keys()),
        "parameters": model.num_parameters(),
        "dtype": str(next(model.parameters()).dtype),
        "names": sorted(k for k in sd.keys()),
        "loading": {k: sorted(str(x) for x in v) for k, v in info.items()},
        "eos": GenerationConfig.from_pretrained(d).eos_token_id,
        "generated": gen,
        "logitsFinite": bool(torch.isfinite(logits).all()),
        "logitStd": float(logits.std()),
    }
    if job.get("sameAs"):
        a = {k: v for k, v in sd.items()}
        ref = AutoModelForCausalLM.from_pretrained(job["sameAs"], dtype="auto").state_dict()
        row["sameAsRef"] = all(torch.equal(a[k], ref[k]) for k in ref)
    if job.get("roundedFrom"):
        ref = AutoModelForCausalLM.from_pretrained(job["roundedFrom"], dtype=torch.float32).state_dict()
        row["isRoundedRef"] = all(torch.equal(sd[k], ref[k].to(torch.bfloat16)) for k in ref)
    out[job["key"]] = row
print(json.dumps(out))
`;

const FIELDS = [
  "vocab_size",
  "hidden_size",
  "intermediate_size",
  "num_hidden_layers",
  "num_attention_heads",
  "num_key_value_heads",
  "head_dim",
  "rms_norm_eps",
  "tie_word_embeddings",
  "bos_token_id",
  "eos_token_id",
  "max_position_embeddings",
  "hidden_act",
];

type LoadReport = {
  class: string;
  modelType: string;
  fields: Record<string, unknown>;
  ropeParameters: Record<string, unknown>;
  resavedKeys: string[];
  parameters: number;
  dtype: string;
  names: string[];
  loading: Record<string, string[]>;
  eos: number | number[];
  generated: number[];
  logitsFinite: boolean;
  logitStd: number;
  sameAsRef?: boolean;
  isRoundedRef?: boolean;
};

let root: string;
const made: Record<string, MadeModel> = {};
let reports: Record<string, LoadReport>;

const JOBS: Array<{ key: string; options: Omit<MakeModelOptions, "dir">; sameAs?: string; roundedFrom?: string }> = [
  { key: "tiny-gemma", options: { preset: "tiny-gemma" } },
  { key: "tiny-llama", options: { preset: "tiny-llama" } },
  { key: "tiny-qwen2", options: { preset: "tiny-qwen2" } },
  { key: "tiny-mistral", options: { preset: "tiny-mistral" } },
  { key: "tiny-gemma2", options: { preset: "tiny-gemma2" } },
  { key: "tiny-gemma3", options: { preset: "tiny-gemma3" } },
  { key: "tiny-qwen3", options: { preset: "tiny-qwen3" } },
  { key: "tiny-llama3.2", options: { preset: "tiny-llama3.2" } },
  { key: "tiny-llama-bf16", options: { preset: "tiny-llama", dtype: "bf16" }, roundedFrom: "tiny-llama" },
  { key: "tiny-llama-sharded", options: { preset: "tiny-llama", maxShardBytes: 150_000 }, sameAs: "tiny-llama" },
  {
    key: "tiny-llama-gemma-tokenizer",
    options: { preset: "tiny-llama", tokenizer: "gemma", overrides: { num_key_value_heads: 4, rope_scaling: null } },
  },
];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "bg-make-model-"));
  for (const job of JOBS) made[job.key] = await makeModel({ dir: join(root, job.key), ...job.options });
  reports = python(
    LOAD_ALL,
    JOBS.map((job) => ({
      key: job.key,
      dir: join(root, job.key),
      fields: FIELDS,
      prompt: made[job.key]!.preset === "tiny-gemma" || job.options.tokenizer === "gemma" ? [2, 9259, 1902, 600, 17] : [1, 5, 99, 300, 17],
      sameAs: job.sameAs && join(root, job.sameAs),
      roundedFrom: job.roundedFrom && join(root, job.roundedFrom),
    })),
  ) as Record<string, LoadReport>;
}, 300_000);

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe("makeModel: tiny presets load in transformers", () => {
  it.each(JOBS.map((j) => j.key))("%s", async (key) => {
    const m = made[key]!;
    const r = reports[key]!;
    const config = JSON.parse(await readFile(join(m.dir, "config.json"), "utf8")) as Record<string, unknown>;
    const plan = await planModel(JOBS.find((j) => j.key === key)!.options);

    expect(r.class).toBe((config.architectures as string[])[0]);
    expect(r.modelType).toBe(m.architecture);
    for (const f of FIELDS) expect(r.fields[f], f).toEqual(config[f]);
    expect(r.ropeParameters).toEqual(config.rope_parameters);
    // We write every field transformers itself writes for this config.
    expect(r.resavedKeys.filter((k) => !(k in config))).toEqual(["transformers_version"]);
    expect(r.loading).toEqual({ missing_keys: [], unexpected_keys: [], mismatched_keys: [], error_msgs: [] });
    expect(r.parameters).toBe(m.parameterCount);
    expect(r.dtype).toBe(m.dtype === "f32" ? "torch.float32" : "torch.bfloat16");
    const tied = config.tie_word_embeddings === true;
    expect(r.names).toEqual(
      [...plan.tensors.map((t) => t.name), ...(tied ? ["lm_head.weight"] : [])].sort(),
    );
    expect(r.logitsFinite).toBe(true);
    // Random weights that still produce varied text (not one token repeated).
    expect(new Set(r.generated).size).toBeGreaterThanOrEqual(8);
    if (key === "tiny-llama-sharded") expect(r.sameAsRef).toBe(true);
    if (key === "tiny-llama-bf16") expect(r.isRoundedRef).toBe(true);
  });

  it("writes the Gemma tokenizer with a vocabulary that covers it", async () => {
    const dir = made["tiny-gemma"]!.dir;
    expect((await readdir(dir)).sort()).toEqual(
      ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"],
    );
    const tok = await Tokenizer.fromDir(dir);
    const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
    expect(config.vocab_size).toBe(tok.vocabSize);
    expect(reports["tiny-gemma"]!.eos).toEqual([1, 106]);
    expect(tok.eosTokenIds).toEqual([1, 106]);
    expect(tok.applyChatTemplate([{ role: "user", content: "hi" }], { addGenerationPrompt: true })).toBe(
      "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
    );
    // A Llama-shaped model can carry the Gemma tokenizer too.
    const other = made["tiny-llama-gemma-tokenizer"]!;
    expect(reports["tiny-llama-gemma-tokenizer"]!.fields.vocab_size).toBe(tok.vocabSize);
    expect(existsSync(join(other.dir, "tokenizer.json"))).toBe(true);
  });

  it("writes config.json as transformers does (sorted keys, Python floats)", async () => {
    const text = await readFile(join(made["tiny-llama"]!.dir, "config.json"), "utf8");
    expect(text).toContain('"rms_norm_eps": 1e-05,');
    expect(text).toContain('"rope_theta": 500000.0,');
    expect(text).toContain('"attention_dropout": 0.0,');
    const keys = Object.keys(JSON.parse(text) as object);
    expect(keys).toEqual([...keys].sort());
  });
});

describe("makeModel: safetensors files", () => {
  it("has a correct header: padded, contiguous offsets, sizes that match the file", async () => {
    for (const key of ["tiny-gemma", "tiny-llama-bf16", "tiny-qwen2"]) {
      const m = made[key]!;
      const plan = await planModel(JOBS.find((j) => j.key === key)!.options);
      const h = await readHeader(join(m.dir, "model.safetensors"));
      expect(h.metadata).toEqual({ format: "pt" });
      expect(h.headerBytes % 8).toBe(0);
      const entries = Object.entries(h.tensors).sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
      let offset = 0;
      for (const [name, t] of entries) {
        const elementBytes = t.dtype === "F32" ? 4 : 2;
        expect(t.dtype).toBe(m.dtype === "f32" ? "F32" : "BF16");
        expect(t.data_offsets).toEqual([offset, offset + t.shape.reduce((a, b) => a * b, 1) * elementBytes]);
        expect(t.shape).toEqual(plan.tensors.find((p) => p.name === name)!.shape);
        offset = t.data_offsets[1];
      }
      expect(entries.map(([n]) => n).sort()).toEqual(plan.tensors.map((t) => t.name).sort());
      expect(8 + h.headerBytes + offset).toBe(h.fileBytes);
      expect(offset).toBe(m.weightBytes);
    }
  });

  it("splits into shards with an index that names every tensor's shard", async () => {
    const m = made["tiny-llama-sharded"]!;
    const index = JSON.parse(await readFile(join(m.dir, "model.safetensors.index.json"), "utf8")) as {
      metadata: { total_size: number };
      weight_map: Record<string, string>;
    };
    const shards = [...new Set(Object.values(index.weight_map))].sort();
    expect(shards.length).toBeGreaterThan(2);
    expect(shards).toEqual(shards.map((_, i) => `model-0000${i + 1}-of-0000${shards.length}.safetensors`));
    expect(existsSync(join(m.dir, "model.safetensors"))).toBe(false);
    let total = 0;
    const seen = new Set<string>();
    for (const shard of shards) {
      const h = await readHeader(join(m.dir, shard));
      for (const [name, t] of Object.entries(h.tensors)) {
        expect(index.weight_map[name]).toBe(shard);
        seen.add(name);
        total += t.data_offsets[1] - t.data_offsets[0];
      }
      // Each shard stays under the limit unless one tensor alone exceeds it.
      const bytes = h.fileBytes - 8 - h.headerBytes;
      if (Object.keys(h.tensors).length > 1) expect(bytes).toBeLessThanOrEqual(150_000);
    }
    expect([...seen].sort()).toEqual(Object.keys(index.weight_map).sort());
    expect(index.metadata.total_size).toBe(total);
    expect(total).toBe(made["tiny-llama"]!.weightBytes);
  });

  it("is deterministic by seed", async () => {
    const a = join(root, "seed-a");
    const b = join(root, "seed-b");
    const c = join(root, "seed-c");
    await makeModel({ dir: a, preset: "tiny-mistral", seed: 7 });
    await makeModel({ dir: b, preset: "tiny-mistral", seed: 7 });
    await makeModel({ dir: c, preset: "tiny-mistral", seed: 8 });
    expect(await sha256(join(a, "model.safetensors"))).toBe(await sha256(join(b, "model.safetensors")));
    expect(await sha256(join(a, "model.safetensors"))).not.toBe(await sha256(join(c, "model.safetensors")));
    expect(await readFile(join(a, "config.json"), "utf8")).toBe(await readFile(join(c, "config.json"), "utf8"));
    // The default seed is 0.
    expect(await sha256(join(made["tiny-mistral"]!.dir, "model.safetensors"))).not.toBe(
      await sha256(join(a, "model.safetensors")),
    );
  });
});

// Plans each preset, writes its config.json alone and builds the model on the meta
// device in transformers: parameter count and every tensor's shape must agree.
async function checkAgainstMeta(names: PresetName[]): Promise<Record<string, Awaited<ReturnType<typeof planModel>>>> {
  const plans: Record<string, Awaited<ReturnType<typeof planModel>>> = {};
  const dirs: Record<string, string> = {};
  for (const name of names) {
    plans[name] = await planModel({ preset: name });
    dirs[name] = join(root, `${name}-config`);
    await mkdir(dirs[name]!);
    await writeFile(join(dirs[name]!, "config.json"), toPythonJson(plans[name]!.config, FLOAT_FIELDS));
  }
  const meta = python(
    `
import json, sys, torch
from transformers import AutoConfig, AutoModelForCausalLM
out = {}
for name, d in json.load(sys.stdin).items():
    cfg = AutoConfig.from_pretrained(d)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    out[name] = {"parameters": model.num_parameters(), "class": type(model).__name__,
                 "shapes": {k: list(v.shape) for k, v in model.state_dict().items()}}
print(json.dumps(out))`,
    dirs,
  ) as Record<string, { parameters: number; class: string; shapes: Record<string, number[]> }>;
  for (const [name, plan] of Object.entries(plans)) {
    expect(plan.dtype).toBe("bf16");
    expect(meta[name]!.class).toBe((plan.config.architectures as string[])[0]);
    expect(meta[name]!.parameters, name).toBe(plan.parameterCount);
    const shapes = { ...meta[name]!.shapes };
    if (plan.config.tie_word_embeddings === true) delete shapes["lm_head.weight"]; // tied to the embedding
    expect(shapes).toEqual(Object.fromEntries(plan.tensors.map((t) => [t.name, t.shape])));
  }
  return plans;
}

describe("makeModel: real-size presets", () => {
  it("plans gemma-2b and gemma-7b with the real shapes, as transformers builds them", async () => {
    const plans = await checkAgainstMeta(["gemma-2b", "gemma-7b"]);
    // Gemma 2B / 7B parameter counts, with the bundled tokenizer's 262,145-token
    // vocabulary in place of the original 256,000.
    expect(plans["gemma-2b"]!.parameterCount).toBe(2_506_172_416 + (262_145 - 256_000) * 2048);
    expect(plans["gemma-7b"]!.parameterCount).toBe(8_537_680_896 + (262_145 - 256_000) * 3072);
    expect(plans["gemma-2b"]!.config).toMatchObject({ num_key_value_heads: 1, head_dim: 256, hidden_size: 2048 });
    expect(plans["gemma-7b"]!.config).toMatchObject({ num_key_value_heads: 16, head_dim: 256, hidden_size: 3072 });
  });

  it("plans Gemma 2/3, Qwen3 and Llama 3.2 at their published sizes", async () => {
    const plans = await checkAgainstMeta(["gemma2-2b", "gemma2-9b", "gemma3-1b", "gemma3-4b", "gemma3-12b", "qwen3-8b", "llama3.2-3b"]);
    // The published models' parameter counts (Gemma 2 with the bundled tokenizer's
    // vocabulary in place of its 256,000; Gemma 3 4B/12B: the text model only).
    expect(plans["gemma2-2b"]!.parameterCount).toBe(2_614_341_888 + (262_145 - 256_000) * 2304);
    expect(plans["gemma2-9b"]!.parameterCount).toBe(9_241_705_984 + (262_145 - 256_000) * 3584);
    expect(plans["gemma3-1b"]!.parameterCount).toBe(999_885_952 + (262_145 - 262_144) * 1152);
    expect(plans["qwen3-8b"]!.parameterCount).toBe(8_190_735_360);
    expect(plans["llama3.2-3b"]!.parameterCount).toBe(3_212_749_824);
    expect(plans["gemma3-4b"]!.config).toMatchObject({ vocab_size: 262_208, sliding_window: 1024 });
    expect((plans["gemma3-12b"]!.config.layer_types as string[]).filter((t) => t === "full_attention")).toHaveLength(8);
    expect(plans["gemma3-4b"]!.config.rope_parameters).toEqual({
      full_attention: { factor: 8.0, rope_theta: 1000000.0, rope_type: "linear" },
      sliding_attention: { rope_theta: 10000.0, rope_type: "default" },
    });
  });
});

describe("makeModel: bad options", () => {
  it("names the setting at fault", async () => {
    const dir = join(root, "bad");
    const cases: Array<[MakeModelOptions, RegExp]> = [
      [{ dir, preset: "gemma-3b" as never }, /preset: unknown preset "gemma-3b" \(one of tiny-gemma, gemma-2b/],
      [{ dir, dtype: "f16" as never }, /dtype: must be "f32" or "bf16"/],
      [{ dir, seed: -1 }, /seed: must be a non-negative integer/],
      [{ dir, seed: 1.5 }, /seed: must be a non-negative integer/],
      [{ dir, tokenizer: "llama" as never }, /tokenizer: must be "gemma" or "none"/],
      [{ dir, overrides: { num_key_value_heads: 3 } }, /num_key_value_heads: 3 does not divide num_attention_heads \(4\)/],
      [{ dir, overrides: { hidden_size: 0 } }, /hidden_size: must be a positive integer, got 0/],
      [{ dir, overrides: { head_dim: 15 } }, /head_dim: rotary embeddings need an even head_dim/],
      [{ dir, overrides: { vocab_size: 1000 } }, /vocab_size: the Gemma tokenizer has 262145 tokens/],
      [{ dir, preset: "tiny-llama", overrides: { eos_token_id: 5000 } }, /eos_token_id: 5000 is not a token id below vocab_size 1000/],
      [{ dir, overrides: { model_type: "llama" } }, /overrides\.model_type: the preset is a gemma model/],
      [{ dir, overrides: { torch_dtype: "float16" } }, /overrides\.torch_dtype: set by the generator/],
      [{ dir, maxShardBytes: 0 }, /maxShardBytes: must be a positive number/],
      [{ dir: "" }, /dir: the directory to write the model to is required/],
    ];
    for (const [options, message] of cases) {
      const p = makeModel(options);
      await expect(p).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(p).rejects.toThrow(message);
    }
    expect(existsSync(dir)).toBe(false); // nothing written for bad options
  });

  it("refuses a non-empty directory unless told to overwrite a generated model", async () => {
    const dir = join(root, "reuse");
    await makeModel({ dir, preset: "tiny-qwen2", maxShardBytes: 100_000 });
    await expect(makeModel({ dir, preset: "tiny-qwen2" })).rejects.toThrow(/is not empty; choose a new directory/);
    // Overwriting a sharded model with a single file leaves no stale shards behind.
    await makeModel({ dir, preset: "tiny-qwen2", overwrite: true });
    expect((await readdir(dir)).sort()).toEqual(["config.json", "generation_config.json", "model.safetensors"]);

    await writeFile(join(dir, "notes.txt"), "mine");
    await expect(makeModel({ dir, preset: "tiny-qwen2", overwrite: true })).rejects.toThrow(
      /holds files a generated model does not have \(notes\.txt\); refusing to overwrite it/,
    );
    const file = join(root, "a-file");
    await writeFile(file, "");
    await expect(makeModel({ dir: file })).rejects.toThrow(/exists and is not a directory/);
  });
});

describe("make-model CLI", () => {
  function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build the engine package first (pnpm build)`);
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  it("writes a model and reports it", async () => {
    const dir = join(root, "cli-out");
    const r = cli("--preset", "tiny-llama", "--out", dir, "--dtype", "bf16", "--seed", "3", "--set", "num_hidden_layers=1");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^wrote tiny-llama \(llama, 0\.\d+M parameters, bf16, .* MB of weights\) to /);
    const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
    expect(config.num_hidden_layers).toBe(1);
    expect(config.torch_dtype).toBe("bfloat16");
    const same = join(root, "cli-api");
    await makeModel({ dir: same, preset: "tiny-llama", dtype: "bf16", seed: 3, overrides: { num_hidden_layers: 1 } });
    expect(await sha256(join(dir, "model.safetensors"))).toBe(await sha256(join(same, "model.safetensors")));
    expect((await stat(join(dir, "model.safetensors"))).size).toBeGreaterThan(0);
  });

  it("explains bad flags without a stack trace", () => {
    const cases: Array<[string[], RegExp]> = [
      [["--preset", "tiny-llama"], /--out DIR is required/],
      [["--out", join(root, "x"), "--bogus"], /Unknown option '--bogus'/],
      [["--out", join(root, "x"), "--preset", "huge"], /--preset: unknown preset "huge"/],
      [["--out", join(root, "x"), "--dtype", "fp8"], /--dtype: must be f32 or bf16/],
      [["--out", join(root, "x"), "--seed=-4"], /--seed: must be a non-negative integer, got "-4"/],
      [["--out", join(root, "x"), "--seed", "abc"], /--seed: must be a non-negative integer, got "abc"/],
      [["--out", join(root, "x"), "--seed"], /Option '--seed <value>' argument missing/],
      [["--out", join(root, "x"), "--set", "hidden_size"], /--set: expected KEY=VALUE/],
      [["--out", join(root, "x"), "--set", "hidden_size=abc"], /--set hidden_size: VALUE must be JSON/],
      [["--out", join(root, "x"), "--max-shard-size", "lots"], /--max-shard-size: expected a size/],
      [["--out", join(root, "x"), "--set", "num_key_value_heads=3"], /num_key_value_heads: 3 does not divide/],
    ];
    for (const [args, message] of cases) {
      const r = cli(...args);
      expect(r.status, args.join(" ")).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(/^make-model: /);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
    const help = cli("--help");
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/usage: make-model --out DIR/);
  });
});
