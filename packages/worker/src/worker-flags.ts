// The worker's command-line flags (kebab-case of the config keys), shared by
// batchgen-worker and `batchgen worker`.
export interface WorkerFlag {
  flag: string;
  /** The value's placeholder; "" for a switch (a boolean flag that takes no value). */
  arg: string;
  help: string;
  /** The flag may be given several times (its values form a list). */
  multiple?: true;
}

export const workerFlags: WorkerFlag[] = [
  {
    flag: "coordinator",
    arg: "host:port",
    help: "coordinator gRPC address, or a comma-separated list of them that reconnects go round (default 127.0.0.1:50051)",
  },
  { flag: "token", arg: "token", help: "worker token the coordinator expects" },
  { flag: "tls", arg: "", help: "connect with TLS, trusting the system's CA store" },
  { flag: "tls-ca-file", arg: "file", help: "PEM file of the CA that signed the coordinator's certificate (implies --tls)" },
  { flag: "tls-server-name", arg: "name", help: "name the coordinator's certificate must carry, when not the address's host" },
  { flag: "model-dir", arg: "dir", help: "Hugging Face model directory" },
  { flag: "model-name", arg: "name", help: "model name requests use (default: the directory's name)" },
  {
    flag: "lora",
    arg: "name=dir",
    help: "a LoRA adapter (peft directory) that lines may name as their model; repeat the flag, or comma-separate, for several",
    multiple: true,
  },
  { flag: "max-loras", arg: "n", help: "LoRA adapters held in device memory at once, least recently used out (default: one per adapter as far as a tenth of the free device memory goes, at least 8)" },
  { flag: "device", arg: "cpu|cuda:N", help: "engine device (default cpu)" },
  { flag: "threads", arg: "n", help: "CPU threads of the engine" },
  { flag: "max-seqs", arg: "n", help: "sequences the engine runs at once (default: as many as its KV cache holds)" },
  { flag: "max-batch-tokens", arg: "n", help: "tokens per engine step" },
  { flag: "max-model-len", arg: "n", help: "context length cap" },
  { flag: "kv-cache-blocks", arg: "n", help: "KV cache size in blocks" },
  { flag: "kv-cache-memory-fraction", arg: "f", help: "KV cache size as a fraction of free GPU memory" },
  { flag: "quantize", arg: "fp8", help: "quantize the model's bf16/f16/f32 linear weights at load (fp8: e4m3, a scale per output channel)" },
  { flag: "deterministic", arg: "", help: "batch-invariant engine results: a request's output does not depend on what runs beside it (may cost speed)" },
  { flag: "prompt-threads", arg: "n", help: "threads that tokenize prompts, off the event loop (0 = main thread; default 1)" },
  { flag: "no-prefix-caching", arg: "", help: "compute every prompt in full: no sharing of cached prefix blocks between lines" },
  { flag: "prefetch", arg: "x", help: "lines held, as a multiple of max-seqs (default 2)" },
  { flag: "metrics-port", arg: "port", help: "/metrics port, 0 = any free (default 9400)" },
  { flag: "metrics-host", arg: "host", help: "/metrics, /healthz, /readyz bind address (default 127.0.0.1; 0.0.0.0 in a pod)" },
  { flag: "metrics-key", arg: "keys", help: "keys GET /metrics requires as a Bearer token (comma-separated; default open)" },
  { flag: "grace-ms", arg: "ms", help: "drain grace period on SIGTERM (default 30000)" },
  { flag: "worker-id", arg: "id", help: "worker id (default host-pid-random)" },
];

/** The flag as an option spec: `--name <arg>`, or `--name` for a switch. */
export function workerFlagSpec(f: WorkerFlag): string {
  return f.arg === "" ? `--${f.flag}` : `--${f.flag} <${f.arg}>`;
}

export const workerFlagOptions: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = Object.fromEntries(
  workerFlags.map((f) => [f.flag, { type: f.arg === "" ? ("boolean" as const) : ("string" as const), ...(f.multiple ? { multiple: true } : {}) }]),
);

export function workerFlagHelp(): string {
  return workerFlags
    .map((f) => `  ${workerFlagSpec(f).padEnd(38)} ${f.help}  [BATCHGEN_WORKER_${f.flag.toUpperCase().replace(/-/g, "_")}]`)
    .join("\n");
}
