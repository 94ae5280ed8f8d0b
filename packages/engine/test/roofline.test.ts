// tools/roofline.py (issue 11): the workload A roofline from a model's shape and the two
// measured ceilings. The figures below are arithmetic on Gemma 2B's and 7B's shapes (the
// engine's presets) at the H200 ceilings of docs/benchmarks.md (4,237 GB/s, 778 TFLOP/s).
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MODEL_PRESETS } from "../ts/model-presets.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const PYTHON = process.env.BATCHGEN_PYTHON ?? join(REPO, ".venv/bin/python");
const TOOL = join(REPO, "packages/engine/tools/roofline.py");
const VOCAB = 256_000; // Gemma's; the presets take it from the bundled tokenizer
let dir: string;

function run(args: string[]) {
  return spawnSync(PYTHON, [TOOL, ...args], { encoding: "utf8" });
}
function roofline(preset: "gemma-2b" | "gemma-7b", args: string[]) {
  const r = run(["--config", join(dir, `${preset}.json`), "--copy-gbs", "4237", "--tflops", "778", ...args]);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, number>;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "batchgen-roofline-"));
  for (const name of ["gemma-2b", "gemma-7b"] as const) {
    await writeFile(join(dir, `${name}.json`), JSON.stringify({ ...MODEL_PRESETS[name].config, vocab_size: VOCAB }));
  }
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("tools/roofline.py", () => {
  it("puts workload A on Gemma 2B at about 59k out tok/s, the issue's 48k goal at 0.81 of it", () => {
    const r = roofline("gemma-2b", ["--n", "1024", "--max-seqs", "1024"]);
    // 2.5 B matmul parameters: 18 layers of q/k/v/o and a 16,384-wide gated MLP, plus the LM head.
    expect(r.matmul_params).toBe(18 * (2048 * 2048 * 2 + 2 * 2048 * 256 + 3 * 2048 * 16384) + 2048 * VOCAB);
    expect(r.kv_bytes_per_token).toBe(2 * 18 * 1 * 256 * 2);
    expect(r.roofline_out_tok_s).toBeGreaterThan(57_000);
    expect(r.roofline_out_tok_s).toBeLessThan(62_000);
    expect(48_000 / r.roofline_out_tok_s).toBeCloseTo(0.81, 2);
    // Prefill (2.1 PFLOP at 778 TFLOP/s) takes longer than the 255 decode steps.
    expect(r.prefill_s).toBeGreaterThan(r.decode_s);
    // Every step of this workload is compute-bound, so no schedule beats it.
    expect(r.bound_out_tok_s).toBeCloseTo(r.roofline_out_tok_s, 0);
  });

  it("turns memory-bound with few sequences: decode reads the weights every step", () => {
    const wide = roofline("gemma-7b", ["--n", "512"]);
    const narrow = roofline("gemma-7b", ["--n", "512", "--max-seqs", "16"]);
    // 16 at a time: 32 waves of 255 steps, each reading 17 GB of weights at 4,237 GB/s.
    expect(narrow.decode_s).toBeGreaterThan(32 * 255 * (8_537_505_792 * 2) / 4237e9);
    expect(narrow.roofline_out_tok_s).toBeLessThan(wide.roofline_out_tok_s / 3);
    // With every sequence at once, a perfect overlap of prefill and decode would gain.
    expect(wide.bound_out_tok_s).toBeGreaterThan(wide.roofline_out_tok_s);
  });

  it("refuses bad input in one line, without a traceback", () => {
    const missing = run(["--config", join(dir, "nope.json"), "--copy-gbs", "1", "--tflops", "1"]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/nope\.json: not a usable config\.json/);
    expect(missing.stderr).not.toMatch(/Traceback/);
    const zero = run(["--config", join(dir, "gemma-2b.json"), "--copy-gbs", "0", "--tflops", "1"]);
    expect(zero.status).toBe(2);
    expect(zero.stderr).toMatch(/the ceilings > 0/);
  });
});
