// The parts of an end-to-end run as real processes (or, for the coordinator, optionally
// in this process), all on the test run's redis-server with a random key prefix:
// coordinator replicas (packages/coordinator/dist/main.js) and workers
// (packages/worker/dist/main.js, or the CLI's `batchgen worker`) serving the e2e model
// on the real CPU engine.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createLogger } from "@batchgen/core";
import { createCoordinator, type Coordinator, type CoordinatorExtras, type CoordinatorOptions } from "@batchgen/coordinator";
import { E2E_MAX_MODEL_LEN } from "./e2e-model.js";
import { logMessage, NodeProcess } from "./node-process.js";
import { scrape } from "./prometheus-text.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
const COORDINATOR_MAIN = join(ROOT, "packages/coordinator/dist/main.js");
const WORKER_MAIN = join(ROOT, "packages/worker/dist/main.js");
const CLI_MAIN = join(ROOT, "packages/cli/dist/main.js");

export const API_KEY = "sk-e2e-tenant";
export const WORKER_TOKEN = "e2e-worker-token";

/** Settings shared by the replicas of one test: its own Redis prefix and store. */
export interface ClusterSettings {
  redisUrl: string;
  queuePrefix: string;
  storeUrl: string;
  storeDir: string | null;
  cleanup(): void;
}

export function clusterSettings(storeUrl?: string): ClusterSettings {
  const redisUrl = process.env.REDIS_URL;
  if (!redisUrl) throw new Error("REDIS_URL is not set: run the tests through vitest (test/support/global-setup.ts)");
  const storeDir = storeUrl ? null : mkdtempSync(join(tmpdir(), "bg-e2e-store-"));
  return {
    redisUrl,
    queuePrefix: `e2e${randomBytes(6).toString("hex")}`,
    storeUrl: storeUrl ?? storeDir!,
    storeDir,
    cleanup: () => {
      if (storeDir) rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

/** Coordinator settings for tests: short locks and sweeps so faults heal in seconds. */
export function coordinatorOptions(s: ClusterSettings, overrides: CoordinatorOptions = {}): CoordinatorOptions {
  return {
    httpPort: 0,
    grpcPort: 0,
    redisUrl: s.redisUrl,
    queuePrefix: s.queuePrefix,
    storeUrl: s.storeUrl,
    apiKeys: [`${API_KEY}:e2e`],
    workerToken: WORKER_TOKEN,
    shardLines: 100,
    lockDurationMs: 5_000,
    stalledIntervalMs: 500,
    monitorIntervalMs: 200,
    leasePollMs: 100,
    heartbeatIntervalMs: 1_000,
    stopGraceMs: 10_000,
    logLevel: "warn",
    ...overrides,
  };
}

export interface RunningCoordinator {
  httpUrl: string;
  grpcAddress: string;
  stop(): Promise<void>;
}

export async function startInProcessCoordinator(
  options: CoordinatorOptions,
  extras: CoordinatorExtras = {},
): Promise<RunningCoordinator & { coordinator: Coordinator }> {
  const coordinator = createCoordinator(options, { logger: createLogger("coordinator", { level: "warn" }), ...extras });
  await coordinator.start();
  return {
    coordinator,
    httpUrl: `http://127.0.0.1:${coordinator.httpPort}`,
    grpcAddress: `127.0.0.1:${coordinator.grpcPort}`,
    stop: () => coordinator.stop(),
  };
}

export interface CoordinatorProcess extends RunningCoordinator {
  process: NodeProcess;
}

/** One replica as its own process (`node packages/coordinator/dist/main.js --flag value ...`). */
export async function spawnCoordinator(
  name: string,
  options: CoordinatorOptions,
  env: Record<string, string> = {},
  /** A bash snippet run before node in the same process (e.g. `ulimit -f 8`: a file-size limit). */
  shell?: string,
): Promise<CoordinatorProcess> {
  const args = [COORDINATOR_MAIN];
  for (const [key, value] of Object.entries({ ...options, logLevel: "info" })) {
    const flag = `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    args.push(flag, Array.isArray(value) ? value.join(",") : String(value));
  }
  const proc = new NodeProcess(name, args, env, shell);
  const started = logMessage(await proc.waitForLine((l) => logMessage(l, "coordinator started") !== null, 30_000), "coordinator started")!;
  return {
    process: proc,
    httpUrl: `http://127.0.0.1:${started.http_port}`,
    grpcAddress: `127.0.0.1:${started.grpc_port}`,
    stop: () => proc.stop(),
  };
}

export interface WorkerOptions {
  /** The worker's --coordinator: one address, or a comma-separated list reconnects go round. */
  coordinator: string;
  modelDir: string;
  /** The model name lines use; default the worker's (the model folder's name). */
  modelName?: string;
  maxSeqs?: number;
  /** Run it as `batchgen worker` (packages/cli) instead of batchgen-worker. */
  viaCli?: boolean;
  graceMs?: number;
  /** Its /metrics port; default any free one (read from its "worker ready" line). */
  metricsPort?: number;
  /** LoRA adapters it serves (--lora NAME=DIR each) and its adapter slots (--max-loras). */
  loras?: Array<{ name: string; path: string }>;
  maxLoras?: number;
}

export interface WorkerProcess {
  process: NodeProcess;
  /** Its /metrics text (Prometheus exposition). */
  metrics(): Promise<string>;
  /** The coordinator address of each session opened so far (from its "connected" log lines). */
  sessionAddresses(): string[];
  /** Resolves once the worker's session with a coordinator is open (the n-th session, default the first). */
  connected(session?: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** A worker process on the real CPU engine (one thread), serving the model in modelDir. */
export function spawnWorker(name: string, o: WorkerOptions): WorkerProcess {
  const flags = [
    "--coordinator", o.coordinator,
    "--token", WORKER_TOKEN,
    "--model-dir", o.modelDir,
    "--device", "cpu",
    "--threads", "1",
    "--max-seqs", String(o.maxSeqs ?? 16),
    "--max-model-len", String(E2E_MAX_MODEL_LEN),
    "--kv-cache-blocks", "1024",
    "--metrics-port", String(o.metricsPort ?? 0),
    "--metrics-host", "127.0.0.1",
    "--grace-ms", String(o.graceMs ?? 2_000),
    "--worker-id", name,
    "--deterministic", // batch-invariant: each line's answer is the engine-alone reference's
    ...(o.modelName ? ["--model-name", o.modelName] : []),
    ...(o.loras ?? []).flatMap((l) => ["--lora", `${l.name}=${l.path}`]),
    ...(o.maxLoras ? ["--max-loras", String(o.maxLoras)] : []),
  ];
  const args = o.viaCli ? [CLI_MAIN, "worker", ...flags] : [WORKER_MAIN, ...flags];
  const proc = new NodeProcess(name, args, {
    BATCHGEN_WORKER_RECONNECT_MIN_MS: "100",
    BATCHGEN_WORKER_RECONNECT_MAX_MS: "1000",
    LOG_LEVEL: "info",
  });
  let sessions = 0;
  const addresses: string[] = [];
  let metricsPort: number | null = null;
  const waiters: Array<{ session: number; resolve: () => void }> = [];
  proc.onLine((line) => {
    const ready = logMessage(line, "worker ready");
    if (ready) metricsPort = Number(ready.metricsPort);
    const connected = logMessage(line, "connected");
    if (connected === null) return;
    addresses.push(String(connected.address));
    sessions++;
    for (const w of waiters.filter((w) => w.session <= sessions)) w.resolve();
  });
  return {
    process: proc,
    sessionAddresses: () => [...addresses],
    async metrics() {
      if (metricsPort === null) throw new Error(`${name}: no "worker ready" log line with its metrics port yet\n${proc.tail()}`);
      return scrape(`http://127.0.0.1:${metricsPort}/metrics`);
    },
    connected(session = 1, timeoutMs = 30_000) {
      if (sessions >= session) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${name}: session ${session} not open within ${timeoutMs} ms\n${proc.tail()}`)),
          timeoutMs,
        );
        waiters.push({
          session,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
        void proc.exited.then(({ code, signal }) => reject(new Error(`${name} exited (code ${code}, signal ${signal})\n${proc.tail()}`)));
      });
    },
    stop: () => proc.stop(),
  };
}

/** An in-process coordinator with two worker processes (worker-a, worker-b) on its own store. */
export interface TwoWorkerCluster {
  coordinator: RunningCoordinator & { coordinator: Coordinator };
  workers: WorkerProcess[];
  /** Stops the workers, then the coordinator, and removes the store. */
  stop(): Promise<void>;
}

/** Starts a TwoWorkerCluster and waits until both workers are connected; on failure, stops what started. */
export async function startTwoWorkerCluster(modelDir: string, overrides: CoordinatorOptions = {}): Promise<TwoWorkerCluster> {
  const settings = clusterSettings();
  let coordinator: (RunningCoordinator & { coordinator: Coordinator }) | undefined;
  const workers: WorkerProcess[] = [];
  const stop = async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await coordinator?.stop();
    settings.cleanup();
  };
  try {
    coordinator = await startInProcessCoordinator(coordinatorOptions(settings, overrides));
    workers.push(spawnWorker("worker-a", { coordinator: coordinator.grpcAddress, modelDir }));
    workers.push(spawnWorker("worker-b", { coordinator: coordinator.grpcAddress, modelDir }));
    await Promise.all(workers.map((w) => w.connected()));
  } catch (error) {
    await stop();
    throw error;
  }
  return { coordinator, workers, stop };
}

/** A coordinator process with one worker process on its own store: the cluster as a user runs it. */
export interface ProcessCluster {
  coordinator: CoordinatorProcess;
  worker: WorkerProcess;
  /** Stops the worker, then the coordinator, and removes the store. */
  stop(): Promise<void>;
}

/** Starts a ProcessCluster and waits until its worker is connected; on failure, stops what started. */
export async function startProcessCluster(modelDir: string): Promise<ProcessCluster> {
  const settings = clusterSettings();
  let coordinator: CoordinatorProcess | undefined;
  let worker: WorkerProcess | undefined;
  const stop = async () => {
    await worker?.stop();
    await coordinator?.stop();
    settings.cleanup();
  };
  try {
    coordinator = await spawnCoordinator("coordinator", coordinatorOptions(settings));
    worker = spawnWorker("worker", { coordinator: coordinator.grpcAddress, modelDir });
    await worker.connected();
  } catch (error) {
    await stop();
    throw error;
  }
  return { coordinator, worker, stop };
}
