// Our ggml dequantizers (src/model/gguf.cpp) against the gguf Python package, the
// reference implementation llama.cpp ships: blocks quantized by gguf.quants for
// the types it can quantize, random blocks (with finite scales) for the K-quants
// it only dequantizes, and real blocks of every type in the Gemma 3 270M GGUF.
// Every value must match bit for bit (both compute in f32 in the same order).
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

import { realGgufPath } from "./real-gguf.js";
import { runPython } from "./run-python.js";

const CHECK = join(dirname(fileURLToPath(import.meta.url)), "../build/gguf_check");

const FIXTURE_SCRIPT = String.raw`
import json, sys
import numpy as np
from gguf import GGUFWriter, GGUFReader, GGMLQuantizationType as T
from gguf.quants import quantize, dequantize
from gguf.constants import GGML_QUANT_SIZES

inp = json.load(sys.stdin)
rng = np.random.default_rng(20261204)
w = GGUFWriter(inp["out"], "fixture")
done = []
x = rng.standard_normal((8, 512)).astype(np.float32)
x[0] = 0                     # an all-zero row: scale 0
x[1, :32] = 1e-3             # a constant block
x[2] *= 100                  # large values
for t in (T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0):
    q = quantize(x, t)
    w.add_tensor("q." + t.name, q, raw_dtype=t)
    w.add_tensor("expect." + t.name, dequantize(q, t).astype(np.float32))
    done.append(t.name)
# K-quants: gguf quantizes none of them; any bytes are a valid block once its f16
# scales are finite, so random blocks exercise every bit of the layout.
for t, scale_offsets in ((T.Q4_K, (0, 2)), (T.Q5_K, (0, 2)), (T.Q6_K, (208,))):
    block, size = GGML_QUANT_SIZES[t]
    raw = rng.integers(0, 256, size=(8, 512 // block * size), dtype=np.uint8)
    blocks = raw.reshape(-1, size)
    for off in scale_offsets:
        blocks[:, off:off + 2] = (rng.standard_normal(len(blocks)) * 0.05).astype(np.float16).view(np.uint8).reshape(-1, 2)
    w.add_tensor("q." + t.name, raw, raw_dtype=t)
    w.add_tensor("expect." + t.name, dequantize(raw, t).astype(np.float32))
    done.append(t.name)
# Real blocks: the first rows of one tensor of each type in the model file.
real = []
if inp.get("model"):
    seen = set()
    for t in GGUFReader(inp["model"]).tensors:
        if t.tensor_type in seen or t.tensor_type == T.F32:
            continue
        seen.add(t.tensor_type)
        rows = np.asarray(t.data)[:4]
        w.add_tensor("real." + t.name, dequantize(rows, t.tensor_type).astype(np.float32))
        real.append([t.name, t.tensor_type.name])
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(json.dumps({"types": done, "real": real}))
`;

let dir: string | undefined;
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("ggml dequantizers against the gguf package", () => {
  it("match gguf.quants.dequantize bit for bit on every supported type and on the real model's blocks", async () => {
    dir = await mkdtemp(join(tmpdir(), "bg-gguf-"));
    const model = realGgufPath();
    const out = join(dir, "fixture.gguf");
    const made = runPython(FIXTURE_SCRIPT, { out, model }) as { types: string[]; real: string[][] };
    expect(made.types).toEqual(["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"]);
    // The 270M file mixes Q5_0, Q8_0, Q4_K and Q6_K.
    expect(made.real.map((r) => r[1]).sort()).toEqual(["Q4_K", "Q5_0", "Q6_K", "Q8_0"]);

    const r = spawnSync(CHECK, [out, model], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    const lines = r.stdout.trim().split("\n");
    expect(lines.filter((l) => l.startsWith("FAIL"))).toEqual([]);
    expect(lines.at(-1)).toBe(`${made.types.length + made.real.length} tensors checked`);
    for (const type of made.types) expect(r.stdout).toContain(`ok q.${type} ${type}:`);
    for (const [name] of made.real) expect(r.stdout).toMatch(new RegExp(`ok ${name!.replace(/\./g, "\\.")} `));
    expect(r.status).toBe(0);
  });
});
