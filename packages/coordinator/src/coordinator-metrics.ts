// /metrics of a coordinator replica (prefix batchgen_coordinator_). Counters count what
// this replica did (Prometheus sums replicas); the batch and shard gauges read the
// shared state in Redis when scraped.
import { createRegistry } from "@batchgen/core";
import { BATCH_STATUSES } from "@batchgen/core";
import { Counter, Gauge, type Registry } from "prom-client";
import type { JobStore } from "./job-store.js";

const PREFIX = "batchgen_coordinator_";

export class CoordinatorMetrics {
  readonly registry: Registry;
  readonly shardsDone: Counter;
  readonly shardsRetried: Counter;
  readonly linesCompleted: Counter<"outcome">;
  readonly tokensCompleted: Counter<"kind">;
  readonly results: Counter;
  readonly leaseExpiries: Counter;
  readonly workersConnected: Gauge;
  readonly leasesHeld: Gauge;

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
      help: "Shards queued (waiting for a worker) and leased (held by a worker), all replicas.",
      labelNames: ["state"],
      registers,
      async collect() {
        const c = await store.shardCounts();
        this.set({ state: "queued" }, c.queued);
        this.set({ state: "leased" }, c.leased);
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
    this.workersConnected = new Gauge({ name: `${PREFIX}workers_connected`, help: "Worker streams on this replica.", registers });
    this.leasesHeld = new Gauge({ name: `${PREFIX}leases_held`, help: "Leases held by workers of this replica.", registers });
  }
}
