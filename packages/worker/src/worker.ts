// The worker agent: loads the engine and tokenizer, keeps one session with the
// coordinator open (reconnecting with backoff to whichever replica answers, and to the
// next address of its list when it has several), serves /metrics, and drains on stop
// (SIGTERM) or when the coordinator asks.
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import { BatchgenError, createLogger, createRegistry, loadConfig, serveMetrics, type Logger } from "@batchgen/core";
import type { Registry } from "prom-client";
import { Backoff } from "./backoff.js";
import { CoordinatorClient } from "./coordinator-client.js";
import { CreditLedger } from "./credit-ledger.js";
import type { EngineDriver } from "./engine-driver.js";
import { loadEngineDriver } from "./load-engine-driver.js";
import { readEmbeddingModel } from "./embedding-model.js";
import { LineRunner } from "./line-runner.js";
import { PromptPool } from "./prompt-pool.js";
import { withDefaults, workerConfigSchema, type WorkerConfig, type WorkerConfigInput } from "./worker-config.js";
import { WorkerMetrics } from "./worker-metrics.js";
import { WorkerSession, type SessionEnd } from "./worker-session.js";
import { weightsReport } from "./weights-report.js";
import { loadWorkerTokenizer, type WorkerTokenizer } from "./worker-tokenizer.js";

export const WORKER_VERSION = "0.1.0";

/** Parts a caller may supply instead of having the worker load them (tests, benchmark). */
export interface WorkerDeps {
  engine?: EngineDriver;
  tokenizer?: WorkerTokenizer;
  logger?: Logger;
  registry?: Registry;
}

export interface WorkerStats {
  connected: boolean;
  sessionId: string | null;
  /** The coordinator address of the open session (null while not connected). */
  coordinator: string | null;
  leases: number;
  heldLines: number;
  outstandingCredit: number;
  sessions: number;
  state: "idle" | "running" | "draining" | "stopped";
}

export interface Worker {
  readonly config: WorkerConfig;
  /** Loads the engine and tokenizer, opens /metrics, starts connecting; resolves once loaded. */
  start(): Promise<void>;
  /** Drains: no new work, running lines get graceMs to finish, the rest is handed back. */
  stop(graceMs?: number): Promise<void>;
  stats(): WorkerStats;
  /** Resolves when the worker has stopped (stop() or a Drain); rejects if the coordinator refuses it. */
  readonly closed: Promise<void>;
  /** The /metrics port once started (null when metrics are off). */
  readonly metricsPort: number | null;
}

export function createWorker(input: WorkerConfigInput, deps: WorkerDeps = {}): Worker {
  const config = withDefaults(loadConfig(workerConfigSchema, { flags: input as Record<string, unknown> }));
  return new WorkerAgent(config, deps);
}

/**
 * The credit ledger: about prefetch x the engine's running sequences (--max-seqs, or what
 * the engine derived from its KV cache; 32 for an engine that does not say).
 */
function creditLedger(config: WorkerConfig, engine: EngineDriver | undefined): CreditLedger {
  const maxSeqs = config.maxSeqs ?? engine?.model.maxSeqs ?? 32;
  return new CreditLedger({ target: Math.max(1, Math.round(maxSeqs * config.prefetch)) });
}

class WorkerAgent implements Worker {
  readonly closed: Promise<void>;
  metricsPort: number | null = null;
  private resolveClosed!: () => void;
  private rejectClosed!: (err: Error) => void;
  private readonly logger: Logger;
  private readonly registry: Registry;
  private ledger: CreditLedger;
  private engine: EngineDriver | undefined;
  private ownsEngine = false;
  private runner: LineRunner | undefined;
  private prompts: PromptPool | undefined;
  private metrics: WorkerMetrics | undefined;
  private metricsServer: { port: number; close(): Promise<void> } | undefined;
  private session: WorkerSession | undefined;
  private client: CoordinatorClient | undefined;
  private state: WorkerStats["state"] = "idle";
  private sessions = 0;
  private stopping: Promise<void> | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly workerId: string;
  /** Index into config.coordinators of the address the current (or next) session uses. */
  private addressIndex = 0;
  /** TLS settings of every session, read once at start (the CA file). */
  private tls: { ca: Buffer | null; serverName?: string } | null = null;

  constructor(
    readonly config: WorkerConfig,
    private readonly deps: WorkerDeps,
  ) {
    this.closed = new Promise((resolve, reject) => {
      this.resolveClosed = resolve;
      this.rejectClosed = reject;
    });
    this.closed.catch(() => {}); // observed through `closed` by whoever cares
    this.logger = deps.logger ?? createLogger("worker");
    this.registry = deps.registry ?? createRegistry();
    // Sized again once the engine says how many sequences it runs (start()).
    this.ledger = creditLedger(config, undefined);
    this.workerId = config.workerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
  }

  async start(): Promise<void> {
    if (this.state !== "idle") throw new BatchgenError("failed_precondition", "the worker was already started");
    this.state = "running";
    const { config } = this;
    if (config.tls || config.tlsCaFile) {
      let ca: Buffer | null = null;
      if (config.tlsCaFile) {
        try {
          ca = await readFile(config.tlsCaFile);
        } catch (err) {
          throw new BatchgenError("invalid_request", `cannot read --tls-ca-file ${config.tlsCaFile}: ${(err as Error).message}`);
        }
      }
      this.tls = { ca, ...(config.tlsServerName ? { serverName: config.tlsServerName } : {}) };
    }
    if (this.deps.engine) this.engine = this.deps.engine;
    else {
      this.logger.info("loading model", { modelDir: config.modelDir, device: config.device });
      this.engine = await loadEngineDriver(config);
      this.ownsEngine = true;
    }
    this.ledger = creditLedger(config, this.engine);
    const tokenizer = this.deps.tokenizer ?? (await loadWorkerTokenizer(config.modelDir));
    // Prompts are made in threads of their own (the event loop keeps the stream's
    // heartbeats on time); a tokenizer given by the caller works on the main thread.
    if (!this.deps.tokenizer && config.promptThreads > 0) {
      this.prompts = await PromptPool.start({ modelDir: config.modelDir, maxModelLen: this.engine.model.maxModelLen }, config.promptThreads);
    }
    if (this.state !== "running") {
      // Stopped while loading: nothing was leased yet, so there is nothing to hand back.
      await this.shutdown();
      return;
    }
    const embedding = await readEmbeddingModel(config.modelDir);
    if (!embedding.ok) this.logger.warn("embeddings lines will fail on this model", { reason: embedding.reason });
    this.runner = new LineRunner({ engine: this.engine, tokenizer, modelName: config.modelName, embedding, ...(this.prompts ? { prompts: this.prompts } : {}) });
    const engine = this.engine;
    this.metrics = new WorkerMetrics(this.registry, () => engine.stats());
    if (config.metrics) {
      this.metricsServer = await serveMetrics(this.registry, {
        port: config.metricsPort,
        host: config.metricsHost,
        keys: config.metricsKey,
        // Ready: the engine is loaded (it is, by now) and a coordinator accepted this worker.
        ready: async () => (this.session?.isWelcomed ? { ready: true } : { ready: false, reason: `no session with a coordinator (${this.state})` }),
      });
      this.metricsPort = this.metricsServer.port;
    }
    if (this.state !== "running") {
      await this.shutdown();
      return;
    }
    this.logger.info("worker ready", {
      workerId: this.workerId,
      model: config.modelName,
      engine: engineString(engine),
      maxModelLen: engine.model.maxModelLen,
      maxSeqs: config.maxSeqs ?? engine.model.maxSeqs,
      ...weightsReport(engine),
      coordinator: config.coordinator,
      metricsPort: this.metricsPort,
    });
    this.loop = this.run().catch((err: Error) => this.fail(err));
  }

  stats(): WorkerStats {
    const s = this.session;
    return {
      connected: s?.isWelcomed ?? false,
      sessionId: s?.isWelcomed ? s.sessionId : null,
      coordinator: s?.isWelcomed ? this.config.coordinators[this.addressIndex]! : null,
      leases: s?.leaseCount ?? 0,
      heldLines: s?.heldLines ?? 0,
      outstandingCredit: this.ledger.outstanding,
      sessions: this.sessions,
      state: this.state,
    };
  }

  stop(graceMs = this.config.graceMs): Promise<void> {
    this.stopping ??= this.drain(graceMs);
    return this.stopping;
  }

  private async drain(graceMs: number): Promise<void> {
    if (!this.loop || this.state === "stopped") {
      // Not started, or stopped while still loading (start() cleans up when it sees this).
      this.state = "stopped";
      this.resolveClosed();
      return;
    }
    this.state = "draining";
    this.ledger.stop();
    this.logger.info("draining", { graceMs, heldLines: this.session?.heldLines ?? 0 });
    this.wake?.();
    if (this.session?.isWelcomed) await this.session.drain(graceMs);
    else this.session?.abandon();
    await this.loop;
    await this.shutdown();
    this.state = "stopped";
    this.logger.info("worker stopped");
    this.resolveClosed();
  }

  /** Session after session until stopped; backoff between attempts, the next address each time. */
  private async run(): Promise<void> {
    const backoff = new Backoff(this.config.reconnectMinMs, this.config.reconnectMaxMs);
    const addresses = this.config.coordinators;
    while (this.state === "running") {
      const address = addresses[this.addressIndex]!;
      const end = await this.openSession(address);
      this.metrics?.setConnected(false);
      this.client?.close();
      this.client = undefined;
      if (end.kind === "refused") {
        throw new BatchgenError(
          end.code === 16 ? "unauthenticated" : "invalid_request",
          `the coordinator at ${address} refused this worker: ${end.details}`,
        );
      }
      if (end.kind === "drained" || this.state !== "running") return;
      if (end.welcomed) backoff.reset();
      const delay = backoff.next();
      this.addressIndex = (this.addressIndex + 1) % addresses.length;
      this.logger.warn("lost the coordinator; reconnecting", {
        address,
        next: addresses[this.addressIndex],
        inMs: delay,
        error: end.error?.message,
      });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  private openSession(address: string): Promise<SessionEnd> {
    const engine = this.engine!;
    this.ledger.reset();
    this.client = new CoordinatorClient({ address, token: this.config.token, tls: this.tls });
    const session = new WorkerSession({
      stream: this.client.connect(),
      address,
      hello: {
        workerId: this.workerId,
        model: this.config.modelName,
        engine: engineString(engine),
        maxConcurrency: this.ledger.target,
        maxModelLen: engine.model.maxModelLen,
        version: WORKER_VERSION,
        loras: engine.model.loras,
      },
      runner: this.runner!,
      engine,
      ledger: this.ledger,
      metrics: this.metrics!,
      logger: this.logger,
      onWelcome: () => this.metrics?.setConnected(true),
      onDrainRequested: (graceMs) => {
        this.logger.info("the coordinator asked this worker to drain", { graceMs });
        // Logged, not counted: the worker is stopping and its /metrics closes with it.
        this.stop(graceMs).catch((err: unknown) => this.logger.error("draining failed", { error: err instanceof Error ? err.message : String(err) }));
      },
    });
    this.session = session;
    this.sessions++;
    session.open();
    return session.ended$;
  }

  private fail(err: Error): void {
    this.logger.error("worker failed", { error: err.message });
    this.state = "stopped";
    this.shutdown()
      // Logged, not counted: the worker has failed and its /metrics closes with it.
      .catch((e: unknown) => this.logger.error("shutting down failed", { error: e instanceof Error ? e.message : String(e) }))
      .finally(() => this.rejectClosed(err));
  }

  private async shutdown(): Promise<void> {
    this.session?.abandon();
    this.client?.close();
    if (this.metricsServer) await this.metricsServer.close();
    this.metricsServer = undefined;
    await this.prompts?.close();
    this.prompts = undefined;
    if (this.ownsEngine && this.engine) await this.engine.close();
  }
}

function engineString(engine: EngineDriver): string {
  const { device, deviceName } = engine.model;
  return `batchgen-engine/${WORKER_VERSION} ${device}${deviceName ? ` ${deviceName}` : ""}`;
}
