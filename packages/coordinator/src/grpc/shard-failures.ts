// Shards that keep failing do not loop: each failed lease of a shard is counted by
// reason (lease_expired: its worker stopped answering; worker_lost: its stream broke;
// results_not_stored: its results could not be written). A shard that fails
// shardMaxFailures times in a row for one reason is parked: its lines not yet done are
// marked failed, and the finalizer writes each as a `shard_parked` line error that says
// why. Below the limit it runs again, after a backoff with jitter.
import type { Logger } from "@batchgen/core";
import type { CoordinatorConfig } from "../coordinator-config.js";
import type { CoordinatorMetrics } from "../coordinator-metrics.js";
import type { JobStore, ShardJobData } from "../job-store.js";

export type ShardFailureReason = "lease_expired" | "worker_lost" | "results_not_stored";

/** The line error code of a parked shard's lines (docs/reliability.md). */
export const SHARD_PARKED = "shard_parked";

const WHY: Record<ShardFailureReason, string> = {
  lease_expired: "the worker holding it stopped answering (its lease expired) each time",
  worker_lost: "the worker running it disconnected each time",
  results_not_stored: "its results could not be written to object storage each time",
};

export interface ShardFailuresDeps {
  store: JobStore;
  config: CoordinatorConfig;
  metrics: CoordinatorMetrics;
  logger: Logger;
  /** Called when a batch may have every line done. */
  onBatchDone(batchId: string): void;
}

/** Exponential backoff with full jitter: a random delay in [base * 2^(n-1) / 2, base * 2^(n-1)], capped. */
export function backoffMs(attempt: number, baseMs: number, capMs = 30_000): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

export class ShardFailures {
  constructor(private readonly deps: ShardFailuresDeps) {}

  /**
   * Count a failed lease of the shard. Returns "parked" when this failure parked it (the
   * caller then completes its job), else the delay before it should run again.
   */
  async record(data: ShardJobData, reason: ShardFailureReason): Promise<{ parked: true } | { parked: false; retryInMs: number }> {
    const { store, config, metrics, logger } = this.deps;
    metrics.shardFailures.inc({ reason });
    const count = await store.recordShardFailure(data.batchId, data.shard, reason);
    if (count < config.shardMaxFailures) {
      logger.warn("shard failed; it will run again", { batch_id: data.batchId, shard: data.shard, reason, failures: count });
      return { parked: false, retryInMs: backoffMs(count, config.retryBackoffMs) };
    }
    await this.park(data, reason, count);
    return { parked: true };
  }

  private async park(data: ShardJobData, reason: ShardFailureReason, count: number): Promise<void> {
    const { store, metrics, logger } = this.deps;
    const message = `This request was not run: its shard failed ${count} times in a row (${reason}: ${WHY[reason]}), so it was parked instead of retried again.`;
    // Two failures of one shard may park it at once (a lease expiring as its session gives up): once is enough.
    if (!(await store.parkShard(data.batchId, data.shard, message))) return;
    const done = await store.doneLines(data.batchId, data.firstLine, data.lineCount);
    const lines = [];
    for (let i = 0; i < data.lineCount; i++) {
      if (!done[i]) lines.push({ line: data.firstLine + i, ok: false, promptTokens: 0, completionTokens: 0 });
    }
    const mark = await store.markLinesDone(data.batchId, data.shard, lines);
    metrics.shardsParked.inc({ reason });
    if (mark.newlyDone > 0) metrics.linesCompleted.inc({ outcome: "error" }, mark.newlyDone);
    logger.error("shard parked: it failed too often for one reason; its lines end as shard_parked errors", {
      batch_id: data.batchId,
      shard: data.shard,
      reason,
      failures: count,
      lines: lines.length,
    });
    this.deps.onBatchDone(data.batchId);
  }
}
