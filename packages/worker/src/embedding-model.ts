// How a model turns hidden states into an embedding, read from its
// sentence-transformers configuration as sentence-transformers itself reads it:
// modules.json lists the modules (Transformer, then Pooling, then an optional
// Normalize); the Pooling module's config.json names the mode, in the published
// form (`pooling_mode_lasttoken: true`, as Qwen3-Embedding ships it) or the newer
// one (`pooling_mode: "lasttoken"`). A model without modules.json pools by mean
// and normalizes (OpenAI's embeddings are unit vectors). Modules batchgen does not
// run (Dense layers, CLS or max pooling, ...) make embeddings lines fail with a
// message naming them, never silently different vectors.
import { readFile } from "node:fs/promises";
import { join } from "node:path";

export type EmbeddingModel =
  | { ok: true; pooling: "last" | "mean"; normalize: boolean; source: string }
  | { ok: false; reason: string };

interface ModuleEntry {
  path?: unknown;
  type?: unknown;
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, "utf8"));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw new Error(`${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function poolingMode(config: Record<string, unknown>, path: string): "last" | "mean" | string {
  const modern = config.pooling_mode;
  const modes =
    modern !== undefined
      ? (Array.isArray(modern) ? modern : [modern]).map(String)
      : Object.entries(config)
          .filter(([k, v]) => k.startsWith("pooling_mode_") && v === true)
          .map(([k]) => k.slice("pooling_mode_".length));
  if (modes.length === 1 && (modes[0] === "lasttoken" || modes[0] === "last_token")) return "last";
  if (modes.length === 1 && (modes[0] === "mean_tokens" || modes[0] === "mean")) return "mean";
  return `${path} asks for pooling ${modes.length === 0 ? "(none)" : modes.join(" + ")}; batchgen pools by last token or mean`;
}

/** Reads <modelDir>/modules.json and the modules it names; a directory without it (or a GGUF file) gets mean pooling, normalized. */
export async function readEmbeddingModel(modelDir: string): Promise<EmbeddingModel> {
  try {
    const modules = await readJson(join(modelDir, "modules.json"));
    if (modules === undefined) return { ok: true, pooling: "mean", normalize: true, source: "default (no modules.json)" };
    if (!Array.isArray(modules)) return { ok: false, reason: "modules.json is not a list of modules" };
    let pooling: "last" | "mean" | undefined;
    let normalize = false;
    for (const m of modules as ModuleEntry[]) {
      const type = String(m.type ?? "");
      const kind = type.slice(type.lastIndexOf(".") + 1);
      if (kind === "Transformer") continue;
      if (kind === "Normalize") {
        normalize = true;
        continue;
      }
      if (kind === "Pooling" && pooling === undefined) {
        const path = join(String(m.path ?? ""), "config.json");
        const config = await readJson(join(modelDir, path));
        if (typeof config !== "object" || config === null) return { ok: false, reason: `${path} is missing or not an object` };
        const mode = poolingMode(config as Record<string, unknown>, path);
        if (mode !== "last" && mode !== "mean") return { ok: false, reason: mode };
        pooling = mode;
        continue;
      }
      return { ok: false, reason: `modules.json has a ${type || "nameless"} module, which batchgen does not run` };
    }
    if (pooling === undefined) return { ok: false, reason: "modules.json has no Pooling module" };
    return { ok: true, pooling, normalize, source: "modules.json" };
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : String(err) };
  }
}
