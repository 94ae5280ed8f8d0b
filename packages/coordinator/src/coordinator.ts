// One coordinator replica: the HTTP API, the gRPC WorkerService, ingest, the lease
// broker, the finalizer and the batch monitor, over shared state in Redis and object
// storage. Any number of replicas can serve the same batches behind one address.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { BatchgenError, createLogger, createObjectStore, SwallowedErrors, type Logger, type ObjectStore } from "@batchgen/core";
import { BatchMonitor } from "./batch-monitor.js";
import { checkCoordinatorConfig, coordinatorConfigSchema, type CoordinatorConfig, type CoordinatorOptions } from "./coordinator-config.js";
import { CoordinatorMetrics } from "./coordinator-metrics.js";
import { BatchFinalizer } from "./finalize/batch-finalizer.js";
import { WorkerService } from "./grpc/worker-service.js";
import { ApiServer } from "./http/api-server.js";
import { BatchesApi } from "./http/batches-api.js";
import { FilesApi } from "./http/files-api.js";
import { FileDeleter } from "./file-deleter.js";
import { FleetApi } from "./http/fleet-api.js";
import { BatchIngest } from "./ingest/batch-ingest.js";
import { Janitor } from "./janitor.js";
import type { JobStore, StoreEvent } from "./job-store.js";
import { LeaseBroker } from "./lease-broker.js";
import { ProcessGuard } from "./process-guard.js";
import { RedisJobStore } from "./redis/redis-job-store.js";
import { StateGuard } from "./state-guard.js";
import { ShardFailures } from "./grpc/shard-failures.js";
import { TenantAuth } from "./tenant-auth.js";
import { WebhookDispatcher } from "./webhooks/webhook-dispatcher.js";

export interface Coordinator {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Bound ports, known after start() (config port 0 picks a free one). */
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly config: CoordinatorConfig;
  readonly metrics: CoordinatorMetrics;
  /** Run one janitor sweep now (as of `nowMs`): expired files, the trash, stale temp files. */
  sweep(nowMs?: number): Promise<void>;
}

export interface CoordinatorExtras {
  logger?: Logger;
  /** Object storage to use instead of config.storeUrl. */
  objects?: ObjectStore;
  /**
   * Log and count errors that escape every handler (uncaughtException,
   * unhandledRejection) instead of letting them end the process. Default true.
   */
  processGuard?: boolean;
}

/** A coordinator replica from validated config (or options validated here). */
export function createCoordinator(options: CoordinatorConfig | CoordinatorOptions, extras: CoordinatorExtras = {}): Coordinator {
  const config = coordinatorConfigSchema.parse(options);
  checkCoordinatorConfig(config);
  const logger = extras.logger ?? createLogger("coordinator", { level: config.logLevel });
  const replicaId = randomUUID();
  const objects = extras.objects ?? createObjectStore(config.storeUrl);
  const redisStore = new RedisJobStore({
    redisUrl: config.redisUrl,
    prefix: config.queuePrefix,
    lockDurationMs: config.lockDurationMs,
    stalledIntervalMs: config.stalledIntervalMs,
    commandTimeoutMs: config.redisCommandTimeoutMs,
    ...(config.redisTlsCaFile !== undefined ? { tlsCa: readRedisTlsCa(config.redisTlsCaFile) } : {}),
  });
  const store: JobStore = redisStore;
  const metrics = new CoordinatorMetrics(store);
  const swallowed = new SwallowedErrors(logger, metrics.swallowedErrors);
  const ingest = new BatchIngest({ store, objects, config, logger, replicaId, swallowed });
  const finalizer = new BatchFinalizer({ store, objects, logger, replicaId, swallowed, retryBackoffMs: config.retryBackoffMs });
  const broker = new LeaseBroker({ store, logger, pollMs: config.leasePollMs });
  const failures = new ShardFailures({ store, config, metrics, logger, onBatchDone: (batchId) => void finalizer.finalize(batchId) });
  const workers = new WorkerService({
    store,
    objects,
    config,
    logger,
    metrics,
    broker,
    failures,
    swallowed,
    workerTokens: config.workerToken,
    tls: config.grpcTlsCert ? { certFile: config.grpcTlsCert, keyFile: config.grpcTlsKey } : null,
    onBatchDone: (batchId) => void finalizer.finalize(batchId),
    onShardRequeued: (model) => {
      broker.wake(model);
      // Other replicas' pullers also poll: a lost event only delays the re-lease.
      void store.publish({ type: "work", model }).catch(swallowed.at("requeue.publish"));
    },
  });
  const deleter = new FileDeleter({ store, objects });
  const files = new FilesApi({
    store,
    objects,
    deleter,
    swallowed,
    maxFileBytes: config.maxFileBytes,
    defaultExpirySeconds: config.batchFileExpirySeconds,
  });
  const batches = new BatchesApi({
    store,
    files,
    completionWindows: config.completionWindows,
    onCreated: (batchId) => void ingest.run(batchId),
    onCancelled: async (batch) => {
      await store.publish({ type: "cancel", batchId: batch.id, reason: "cancelled" });
      // Best effort: a shard left queued is leased, finds the batch stopped and is completed unrun.
      if (batch.model) void store.removeShards(batch.model, batch.id, batch.shards).catch(swallowed.at("cancel.remove_shards"));
    },
  });
  const stateGuard = new StateGuard({ redis: redisStore, objects, config, logger, epochLost: metrics.redisEpochLost });
  const api = new ApiServer({
    auth: new TenantAuth(config.apiKeys),
    files,
    batches,
    fleet: new FleetApi(store),
    registry: metrics.registry,
    metricsKeys: config.metricsKey,
    ready: () => stateGuard.ready(),
    logger,
    maxFileBytes: config.maxFileBytes,
    requestTimeoutMs: config.requestTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    rejected: metrics.httpRequestsRejected,
  });
  const janitor = new Janitor({
    store,
    objects,
    deleter,
    logger,
    metrics,
    swallowed,
    replicaId,
    intervalMs: config.janitorIntervalMs,
    staleTempMs: config.staleTempMs,
  });
  const guard = extras.processGuard === false ? null : new ProcessGuard(logger, metrics.uncaughtErrors);
  const monitor = new BatchMonitor({ store, ingest, finalizer, config, logger });
  const webhooks = new WebhookDispatcher({ store, outbox: redisStore.webhookOutbox(), config, logger, deliveries: metrics.webhookDeliveries });
  store.onLeaseExpired((jobId, model) => {
    metrics.leaseExpiries.inc();
    metrics.shardsRetried.inc();
    logger.info("lease expired; shard back in its queue", { job_id: jobId });
    void store
      .shardJobData(model, jobId)
      .then((data) => (data ? failures.record(data, "lease_expired") : undefined))
      .catch(swallowed.at("lease_expired.count_failure"));
  });

  const onEvent = (e: StoreEvent): void => {
    if (e.type === "cancel") workers.cancelBatch(e.batchId, e.reason);
    else if (e.type === "work") broker.wake(e.model);
  };

  let httpPort = 0;
  let grpcPort = 0;
  let started = false;
  return {
    config,
    metrics,
    get httpPort() {
      return httpPort;
    },
    get grpcPort() {
      return grpcPort;
    },
    sweep: (nowMs?: number) => janitor.sweep(nowMs),
    async start() {
      if (started) return;
      started = true;
      try {
        await stateGuard.start();
      } catch (err) {
        started = false;
        await store.close();
        throw err;
      }
      guard?.install();
      if (config.workerToken.length === 0) {
        metrics.insecureWorkers.set(1);
        logger.warn("accepting workers without a token (--insecure-workers): anyone who reaches the gRPC port can lease and read prompts", {
          grpc_host: config.grpcHost,
        });
      }
      await store.subscribe(onEvent);
      await store.watchKnownModels();
      grpcPort = await workers.listen(config.grpcHost, config.grpcPort);
      httpPort = await api.listen(config.httpHost, config.httpPort);
      monitor.start();
      janitor.start();
      webhooks.start();
      logger.info("coordinator started", {
        http_port: httpPort,
        grpc_port: grpcPort,
        grpc_tls: config.grpcTlsCert !== "",
        replica: replicaId,
      });
    },
    async stop() {
      if (!started) return;
      started = false;
      await monitor.stop();
      await janitor.stop();
      await webhooks.stop();
      await api.close();
      await broker.stop();
      await workers.stop();
      await ingest.stop();
      await finalizer.stop();
      await store.close();
      guard?.uninstall();
      if (!extras.objects) await (objects as ObjectStore & { close?: () => Promise<void> }).close?.();
      logger.info("coordinator stopped", { replica: replicaId });
    },
  };
}

/** The CA file of --redis-tls-ca-file, read before the Redis client connects. */
function readRedisTlsCa(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new BatchgenError("invalid_request", `cannot read --redis-tls-ca-file ${file}: ${(err as Error).message}`, { param: "redisTlsCaFile" });
  }
}
