// /metrics of a coordinator replica (prefix batchgen_coordinator_). Counters count what
// this replica did (Prometheus sums replicas); the batch and shard gauges read the
// shared state in Redis when scraped.
import { createRegistry } from "@batchgen/core";
import { BATCH_STATUSES, isTerminalBatchStatus, type BatchStatus } from "@batchgen/core";
import { Counter, Gauge, type Registry } from "prom-client";
import type { BatchRecord, JobStore } from "./job-store.js";

const PREFIX = "batchgen_coordinator_";

export class CoordinatorMetrics {
  readonly registry: Registry;
  readonly shardsDone: Counter;
  readonly shardsRetried: Counter;
  readonly linesCompleted: Counter<"outcome">;
  readonly tokensCompleted: Counter<"kind">;
  readonly results: Counter;
  readonly leaseExpiries: Counter;
  readonly workersConnected: Gauge<"model">;
  readonly leasesHeld: Gauge;
  readonly swallowedErrors: Counter<"site">;
  readonly uncaughtErrors: Counter<"kind">;
  readonly httpRequestsRejected: Counter<"status">;
  readonly janitorDeleted: Counter<"what">;
  readonly webhookDeliveries: Counter<"outcome">;
  readonly workersRefused: Counter;
  readonly insecureWorkers: Gauge;
  readonly shardFailures: Counter<"reason">;
  readonly shardsParked: Counter<"reason">;
  readonly resultWriteRetries: Counter;
  readonly redisEpochLost: Gauge;

  constructor(store: JobStore) {
    const registry = createRegistry(PREFIX);
    this.registry = registry;
    const registers = [registry];
    new Gauge({
      name: `${PREFIX}batches`,
      help: "Batches by status (all replicas).",
      labelNames: ["status"],
      registers,
      async collect() {
        const counts = await store.statusCounts();
        for (const s of BATCH_STATUSES) this.set({ status: s }, counts[s] ?? 0);
      },
    });
    new Gauge({
      name: `${PREFIX}shards`,
      help: "Shards queued (waiting for a worker) and leased (held by a worker) per model, all replicas.",
      labelNames: ["model", "state"],
      registers,
      async collect() {
        const byModel = await store.shardCounts();
        this.reset();
        for (const [model, c] of byModel) {
          this.set({ model, state: "queued" }, c.queued);
          this.set({ model, state: "leased" }, c.leased);
        }
      },
    });
    new Gauge({
      name: `${PREFIX}batch_oldest_seconds`,
      help: "Seconds the oldest batch in each non-terminal status has been in it (0: none), all replicas.",
      labelNames: ["status"],
      registers,
      async collect() {
        const batches = await store.getBatches(await store.activeBatchIds());
        const now = Date.now();
        const oldest = new Map<BatchStatus, number>();
        for (const b of batches) {
          if (!b || isTerminalBatchStatus(b.status)) continue;
          const age = Math.max(0, (now - statusSinceMs(b)) / 1000);
          oldest.set(b.status, Math.max(oldest.get(b.status) ?? 0, age));
        }
        for (const s of BATCH_STATUSES) if (!isTerminalBatchStatus(s)) this.set({ status: s }, oldest.get(s) ?? 0);
      },
    });
    this.shardsDone = new Counter({ name: `${PREFIX}shards_done_total`, help: "Shards completed.", registers });
    this.shardsRetried = new Counter({
      name: `${PREFIX}shards_retried_total`,
      help: "Shards put back in their queue (released, worker gone, lease lost).",
      registers,
    });
    this.linesCompleted = new Counter({
      name: `${PREFIX}lines_completed_total`,
      help: "Lines persisted for the first time, by outcome (response or error).",
      labelNames: ["outcome"],
      registers,
    });
    this.tokensCompleted = new Counter({
      name: `${PREFIX}tokens_completed_total`,
      help: "Tokens of lines persisted for the first time (prompt, completion; prompt_cached: of prompt, served from the engines' prefix caches).",
      labelNames: ["kind"],
      registers,
    });
    this.results = new Counter({
      name: `${PREFIX}results_total`,
      help: "Results received from workers and persisted (take rate() for results/s).",
      registers,
    });
    this.leaseExpiries = new Counter({
      name: `${PREFIX}lease_expiries_total`,
      help: "Leases whose lock expired: shards put back in their queue by the stalled checker of this replica.",
      registers,
    });
    this.workersConnected = new Gauge({
      name: `${PREFIX}workers_connected`,
      help: "Worker streams on this replica, by the model they serve.",
      labelNames: ["model"],
      registers,
    });
    this.leasesHeld = new Gauge({ name: `${PREFIX}leases_held`, help: "Leases held by workers of this replica.", registers });
    this.swallowedErrors = new Counter({
      name: `${PREFIX}swallowed_errors_total`,
      help: "Errors of best-effort and background steps (cleanups, lock renewals, notifications, Redis or store calls off the request path) logged and let pass, by site.",
      labelNames: ["site"],
      registers,
    });
    this.uncaughtErrors = new Counter({
      name: `${PREFIX}uncaught_errors_total`,
      help: "Errors that escaped every handler (uncaughtException, unhandledRejection), logged by the process guard.",
      labelNames: ["kind"],
      registers,
    });
    this.httpRequestsRejected = new Counter({
      name: `${PREFIX}http_requests_rejected_total`,
      help: "HTTP requests answered with an error status before or while reading them (408, 413, 400, 405 ...), by status.",
      labelNames: ["status"],
      registers,
    });
    this.janitorDeleted = new Counter({
      name: `${PREFIX}janitor_deleted_total`,
      help: "What the janitor removed: expired files, trashed objects, stale temp files.",
      labelNames: ["what"],
      registers,
    });
    this.webhookDeliveries = new Counter({
      name: `${PREFIX}webhook_deliveries_total`,
      help: "Webhook delivery attempts by outcome (delivered, retry, failed).",
      labelNames: ["outcome"],
      registers,
    });
    this.workersRefused = new Counter({
      name: `${PREFIX}workers_refused_total`,
      help: "Worker streams refused for a missing or wrong worker token.",
      registers,
    });
    this.insecureWorkers = new Gauge({
      name: `${PREFIX}insecure_workers`,
      help: "1 when this replica accepts workers without a token (--insecure-workers).",
      registers,
    });
    this.shardFailures = new Counter({
      name: `${PREFIX}shard_failures_total`,
      help: "Leases of a shard that ended in failure, by reason (lease_expired, worker_lost, results_not_stored).",
      labelNames: ["reason"],
      registers,
    });
    this.shardsParked = new Counter({
      name: `${PREFIX}shards_parked_total`,
      help: "Shards parked after failing shardMaxFailures times in a row for one reason: their lines end as shard_parked errors.",
      labelNames: ["reason"],
      registers,
    });
    this.resultWriteRetries = new Counter({
      name: `${PREFIX}result_write_retries_total`,
      help: "Failed attempts to store a flush of results (retried with backoff).",
      registers,
    });
    this.redisEpochLost = new Gauge({
      name: `${PREFIX}redis_epoch_lost`,
      help: "1 when Redis came back without the state the store remembers (epoch key missing): records are lost.",
      registers,
    });
  }
}

/** When the batch entered its current status. */
function statusSinceMs(b: BatchRecord): number {
  switch (b.status) {
    case "in_progress": return b.inProgressAtMs ?? b.createdAtMs;
    case "finalizing": return b.finalizingAtMs ?? b.createdAtMs;
    case "cancelling": return b.cancellingAtMs ?? b.createdAtMs;
    default: return b.createdAtMs;
  }
}
