// The periodic sweep every replica runs over batches not yet final, so nothing depends on
// the replica that started something staying alive: it restarts an ingest whose replica
// died, finalizes batches whose lines are all done (or that a dead replica was
// finalizing), expires batches past their completion window, and finishes cancelled or
// expired batches once their workers stopped (or the stop grace ran out).
import type { Logger } from "@batchgen/core";
import type { CoordinatorConfig } from "./coordinator-config.js";
import type { BatchFinalizer } from "./finalize/batch-finalizer.js";
import { ingestLockName, type BatchIngest } from "./ingest/batch-ingest.js";
import type { BatchRecord, JobStore } from "./job-store.js";

export interface BatchMonitorDeps {
  store: JobStore;
  ingest: BatchIngest;
  finalizer: BatchFinalizer;
  config: CoordinatorConfig;
  logger: Logger;
}

export class BatchMonitor {
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly deps: BatchMonitorDeps) {}

  start(): void {
    this.timer = setInterval(() => {
      if (this.ticking || this.stopped) return;
      this.ticking = this.tick()
        .catch((err: unknown) => this.deps.logger.warn("batch monitor tick failed", { err }))
        .finally(() => {
          this.ticking = null;
        });
    }, this.deps.config.monitorIntervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.ticking;
  }

  async tick(nowMs: number = Date.now()): Promise<void> {
    const { store } = this.deps;
    const ids = await store.activeBatchIds();
    const batches = await store.getBatches(ids);
    for (const b of batches) {
      if (this.stopped) return;
      if (b) await this.check(b, nowMs);
    }
  }

  private async check(b: BatchRecord, nowMs: number): Promise<void> {
    const { store, ingest, finalizer } = this.deps;
    switch (b.status) {
      case "validating":
        if (nowMs >= b.expiresAtMs) {
          await store.transitionBatch(b.id, ["validating"], "expired", { expiredAtMs: nowMs });
        } else if (!(await store.lockHeld(ingestLockName(b.id)))) {
          void ingest.run(b.id);
        }
        return;
      case "in_progress":
        if (!b.stopReason && nowMs >= b.expiresAtMs) {
          this.deps.logger.info("batch expired", { batch_id: b.id });
          await store.updateBatch(b.id, { stopReason: "expired" });
          await store.publish({ type: "cancel", batchId: b.id, reason: "expired" });
          return;
        }
        if (b.stopReason) await this.finishStopped(b, b.expiresAtMs, nowMs);
        else if (b.completed + b.failed >= b.total) await finalizer.finalize(b.id);
        return;
      case "cancelling":
        await this.finishStopped(b, b.cancellingAtMs ?? nowMs, nowMs);
        return;
      case "finalizing":
        await finalizer.finalize(b.id);
        return;
      default:
        return;
    }
  }

  /** Finalize a stopped batch once no worker holds a live lease of it (or the grace ran out). */
  private async finishStopped(b: BatchRecord, sinceMs: number, nowMs: number): Promise<void> {
    const { store, finalizer, config } = this.deps;
    const live = await store.liveLeases(b.id, nowMs);
    if (live === 0 || nowMs - sinceMs >= config.stopGraceMs) {
      await finalizer.finalize(b.id);
      return;
    }
    // Repeat the cancel: a replica that missed the event still holds leases.
    await store.publish({ type: "cancel", batchId: b.id, reason: b.stopReason ?? "cancelled" });
  }
}
