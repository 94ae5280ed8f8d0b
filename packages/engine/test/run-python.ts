// Python scripts of the engine's tests (transformers as the reference), run on the
// repo's venv unless BATCHGEN_PYTHON names another interpreter.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const PYTHON = process.env.BATCHGEN_PYTHON ?? join(REPO, ".venv/bin/python");

/** Runs `python -c script` with `input` as JSON on stdin; its stdout is JSON. `env` adds variables. */
export function runPython(script: string, input: unknown, env: Record<string, string> = {}): unknown {
  const r = spawnSync(PYTHON, ["-c", script], {
    input: JSON.stringify(input),
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
    env: { ...process.env, TRANSFORMERS_VERBOSITY: "error", HF_HUB_OFFLINE: "1", TOKENIZERS_PARALLELISM: "false", ...env },
  });
  if (r.status !== 0) throw new Error(`${PYTHON} failed (${r.error?.message ?? r.status}):\n${r.stderr}`);
  return JSON.parse(r.stdout);
}
