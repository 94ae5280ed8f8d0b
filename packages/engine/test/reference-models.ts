// Random-weight Hugging Face models and transformers' outputs on them, made by
// tools/reference.py and shared by the engine's numerics tests.
//
// The script runs once per version of itself: its output goes to a directory under
// os.tmpdir() named by a hash of the script, so test files of one run (and later
// runs) reuse it. A lock directory keeps two test files from building it at once.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const SCRIPT = join(HERE, "../tools/reference.py");
const REPO = join(HERE, "../../..");

export interface ReferencePrompt {
  ids: number[];
  /** transformers' f32 logits, [ids.length * vocabSize], every position. */
  logits: Float32Array;
}

export interface ReferenceGreedy {
  prompt: number[];
  /** transformers' generate(): greedy, 64 new tokens, EOS disabled. */
  tokens: number[];
}

export interface ReferenceCase {
  name: string;
  modelDir: string;
  modelType: string;
  dtype: string;
  vocabSize: number;
  prompts: ReferencePrompt[];
  greedy: ReferenceGreedy[];
}

interface Manifest {
  cases: Record<string, {
    model_dir: string; model_type: string; dtype: string; vocab_size: number;
    prompts: { ids: number[]; logits: string }[];
    greedy: { prompt: number[]; tokens: number[] }[];
  }>;
}

export function pythonPath(): string {
  const venv = join(REPO, ".venv/bin/python");
  return process.env.BATCHGEN_PYTHON ?? (existsSync(venv) ? venv : "python3");
}

function runScript(script: string, outDir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(pythonPath(), [script, "--out", outDir], { maxBuffer: 64 * 1024 * 1024 }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`${pythonPath()} ${script} failed: ${error.message}\n${stderr}`));
      else resolve();
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The directory holding manifest.json, building it first when needed: the output
 * of tools/reference.py, or of another script of tools/ (which may import
 * reference.py, so its version counts too, as do the other scripts it imports).
 */
export async function referenceDir(script = SCRIPT, imports: string[] = []): Promise<string> {
  const hashed = createHash("sha256").update(await readFile(script));
  if (script !== SCRIPT) hashed.update(await readFile(SCRIPT));
  for (const i of imports) hashed.update(await readFile(i));
  const hash = hashed.digest("hex").slice(0, 16);
  const dir = join(tmpdir(), `batchgen-${basename(script, ".py").replace(/_/g, "-")}-${hash}`);
  const lock = `${dir}.lock`;
  const deadline = Date.now() + 10 * 60_000;
  while (!existsSync(join(dir, "manifest.json"))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${dir} (lock ${lock})`);
    try {
      await mkdir(lock);
    } catch {
      // Another process builds it; a lock older than 10 minutes is left from a crash.
      const age = Date.now() - (await stat(lock).then((s) => s.mtimeMs, () => Date.now()));
      if (age > 10 * 60_000) await rm(lock, { recursive: true, force: true });
      await sleep(500);
      continue;
    }
    try {
      if (existsSync(join(dir, "manifest.json"))) break;
      const tmp = `${dir}.tmp-${process.pid}`;
      await rm(tmp, { recursive: true, force: true });
      await runScript(script, tmp);
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir);
    } finally {
      await rm(lock, { recursive: true, force: true });
    }
  }
  return dir;
}

export async function readF32(path: string): Promise<Float32Array> {
  const buf = await readFile(path);
  // Copy: a Buffer's offset into its ArrayBuffer need not be 4-aligned.
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

/** Every reference case (all architectures and loader variants), logits loaded. */
export async function referenceCases(): Promise<ReferenceCase[]> {
  const dir = await referenceDir();
  const manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as Manifest;
  const out: ReferenceCase[] = [];
  for (const [name, c] of Object.entries(manifest.cases)) {
    out.push({
      name,
      modelDir: join(dir, c.model_dir),
      modelType: c.model_type,
      dtype: c.dtype,
      vocabSize: c.vocab_size,
      prompts: await Promise.all(c.prompts.map(async (p) => ({ ids: p.ids, logits: await readF32(join(dir, p.logits)) }))),
      greedy: c.greedy.map((g) => ({ prompt: g.prompt, tokens: g.tokens })),
    });
  }
  return out;
}

/**
 * The acceptance's error measure, per position (row) r:
 *   relErr(r) = max_i |got[r,i] - want[r,i]| / max_i |want[r,i]|
 * Returns the worst row's value and its index.
 */
export function maxRelativeError(got: Float32Array, want: Float32Array, vocab: number): { err: number; row: number } {
  let worst = 0;
  let worstRow = -1;
  for (let r = 0; r * vocab < want.length; r++) {
    let diff = 0;
    let scale = 0;
    for (let i = r * vocab; i < (r + 1) * vocab; i++) {
      diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
      scale = Math.max(scale, Math.abs(want[i]!));
    }
    const e = diff / Math.max(scale, 1e-30);
    if (!(e <= worst)) {
      worst = Number.isNaN(e) ? Infinity : e;
      worstRow = r;
    }
  }
  return { err: worst, row: worstRow };
}
