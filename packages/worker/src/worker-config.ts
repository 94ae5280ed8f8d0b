// The worker's settings, validated once at start-up. Flags and environment variables
// (BATCHGEN_WORKER_<SNAKE_CASE>, e.g. BATCHGEN_WORKER_MODEL_DIR) map onto this schema.
import { basename, resolve } from "node:path";
import { BatchgenError, loadConfig } from "@batchgen/core";
import { z } from "zod";

// loadConfig coerces env and string flags to each field's type before validation.
const int = (min: number) => z.number().int().min(min);

export const workerConfigSchema = z.object({
  /**
   * gRPC address of the coordinator (host:port, or a gRPC target such as dns:///svc:50051;
   * replicas may share it), or a comma-separated list of them: each reconnect goes to the
   * next address, round-robin, so a worker outlives a replica without a proxy in front.
   */
  coordinator: z
    .string()
    .min(1)
    .default("127.0.0.1:50051")
    .refine((s) => coordinatorAddresses(s).every((a) => a !== ""), "expected host:port, or a comma-separated list of them with no empty entry"),
  /** The worker token the coordinator expects (sent as `authorization: Bearer <token>`). */
  token: z.string().min(1),
  /** Connect with TLS, trusting the system's CA store (or tlsCaFile). */
  tls: z.boolean().default(false),
  /** PEM file of the CA(s) that signed the coordinator's certificate; implies tls. */
  tlsCaFile: z.string().min(1).optional(),
  /** The name the coordinator's certificate must carry, when it differs from the address's host. */
  tlsServerName: z.string().min(1).optional(),
  /** A Hugging Face model directory (config.json, *.safetensors, tokenizer files). */
  modelDir: z.string().min(1),
  /** The model name requests use; default: the model directory's name. */
  modelName: z.string().min(1).optional(),
  /**
   * LoRA adapters a line's `model` may name instead of the base model: NAME=DIR entries
   * (a list, or one comma-separated string as the environment gives it).
   */
  lora: z
    .union([z.string(), z.array(z.union([z.string(), z.object({ name: z.string(), path: z.string() })]))])
    .transform((v, ctx) => {
      type Entry = string | { name: string; path: string };
      const entries = (Array.isArray(v) ? (v as Entry[]) : [v])
        .flatMap((e): Entry[] => (typeof e === "string" ? e.split(",") : [e]))
        .filter((e) => typeof e !== "string" || e.trim() !== "");
      const out: { name: string; path: string }[] = [];
      for (const e of entries) {
        const eq = typeof e === "string" ? e.indexOf("=") : 0;
        const name = (typeof e === "string" ? e.slice(0, eq) : e.name).trim();
        const path = (typeof e === "string" ? e.slice(eq + 1) : e.path).trim();
        if ((typeof e === "string" && eq <= 0) || name === "" || path === "") {
          ctx.addIssue({ code: "custom", message: `expected NAME=DIR, got ${JSON.stringify(e)}` });
        } else if (out.some((o) => o.name === name)) {
          ctx.addIssue({ code: "custom", message: `the adapter name ${JSON.stringify(name)} is given twice` });
        } else {
          out.push({ name, path });
        }
      }
      return out;
    })
    .default([]),
  /** LoRA adapters held in device memory at once; default: one per adapter as far as a tenth of the free device memory goes, at least 8. */
  maxLoras: int(1).optional(),
  device: z.string().regex(/^(cpu|cuda(:\d+)?)$/, 'expected "cpu", "cuda" or "cuda:N"').default("cpu"),
  threads: int(1).optional(),
  /**
   * Engine: most sequences running at once; default: what the engine derives from its
   * KV cache (ModelInfo.maxSeqs). The worker holds about prefetch x this many lines.
   */
  maxSeqs: int(1).optional(),
  maxBatchTokens: int(1).optional(),
  maxModelLen: int(1).optional(),
  kvCacheBlocks: int(1).optional(),
  kvCacheMemoryFraction: z.number().gt(0).max(1).optional(),
  deterministic: z.boolean().optional(),
  /** "fp8": quantize the model's float linear weights at load (per-channel e4m3); default: as stored. */
  quantize: z.enum(["fp8"]).optional(),
  /** Threads that render chat templates and tokenize prompts (0: the main thread, a line per turn). */
  promptThreads: int(0).max(64).default(1),
  /** Switches the engine's automatic prefix caching off (on by default). */
  noPrefixCaching: z.boolean().default(false),
  /** Lines to hold, as a multiple of maxSeqs (work asked for before the engine runs dry). */
  prefetch: z.number().min(1).default(2),
  metrics: z.boolean().default(true),
  /** Port of /metrics; 0 picks a free one. */
  metricsPort: int(0).max(65535).default(9400),
  /** Bind address of /metrics and /healthz, /readyz; loopback unless set (a pod sets 0.0.0.0). */
  metricsHost: z.string().default("127.0.0.1"),
  /** Keys GET /metrics requires as `Authorization: Bearer <key>` (comma-separated); empty: open. */
  metricsKey: z
    .union([z.string(), z.array(z.string())])
    .transform((v) => (Array.isArray(v) ? v : v.split(",")).map((t) => t.trim()).filter((t) => t !== ""))
    .default([]),
  /** SIGTERM / Drain: how long running lines may take before they are handed back. */
  graceMs: int(0).default(30_000),
  workerId: z.string().min(1).optional(),
  reconnectMinMs: int(1).default(250),
  reconnectMaxMs: int(1).default(5_000),
});

export type WorkerConfigInput = z.input<typeof workerConfigSchema>;
export type WorkerConfig = z.output<typeof workerConfigSchema> & {
  modelName: string;
  /** The `coordinator` setting as a list of addresses, in the order they are tried. */
  coordinators: string[];
};

/**
 * The addresses in a `coordinator` setting. gRPC's own ipv4:/ipv6: targets list several
 * addresses with commas inside one target (one channel balances over them): kept whole.
 */
export function coordinatorAddresses(setting: string): string[] {
  const s = setting.trim();
  if (/^ipv[46]:/.test(s)) return [s];
  return s.split(",").map((a) => a.trim());
}

export function loadWorkerConfig(sources: { env?: Record<string, string | undefined>; flags?: Record<string, unknown> }): WorkerConfig {
  const config = loadConfig(workerConfigSchema, { env: sources.env, envPrefix: "BATCHGEN_WORKER", flags: sources.flags });
  return withDefaults(config);
}

/** Fills what depends on other settings (model name from the directory, the address list). */
export function withDefaults(config: z.output<typeof workerConfigSchema>): WorkerConfig {
  const modelDir = resolve(config.modelDir);
  // A GGUF file names its model without the extension.
  const modelName = config.modelName ?? basename(modelDir).replace(/\.gguf$/, "");
  if (config.lora.some((l) => l.name === modelName)) {
    throw new BatchgenError("invalid_request", `invalid configuration: lora: the adapter name ${JSON.stringify(modelName)} is the base model's name`, {
      param: "lora",
    });
  }
  const lora = config.lora.map((l) => ({ name: l.name, path: resolve(l.path) }));
  return { ...config, modelDir, modelName, lora, coordinators: coordinatorAddresses(config.coordinator) };
}
