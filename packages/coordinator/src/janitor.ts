// The janitor: a periodic sweep, run by one replica at a time (a Redis lock), that deletes
// expired files (their records, objects and the storage of the finished batches that read
// them; a file a running batch still reads waits for the next sweep), finishes deletions
// whose objects could not be removed at the time (the trash), and removes temp files an
// interrupted upload left in a filesystem store.
import type { Logger, ObjectStore, SwallowedErrors } from "@batchgen/core";
import type { CoordinatorMetrics } from "./coordinator-metrics.js";
import type { FileDeleter } from "./file-deleter.js";
import type { JobStore } from "./job-store.js";

export interface JanitorDeps {
  store: JobStore;
  objects: ObjectStore;
  deleter: FileDeleter;
  logger: Logger;
  metrics: CoordinatorMetrics;
  swallowed: SwallowedErrors;
  replicaId: string;
  intervalMs: number;
  /** A temp file of the store older than this is an interrupted upload's. */
  staleTempMs: number;
}

const LOCK = "janitor";
const BATCH = 100;
/** Pages of expired files one sweep works through (the next sweep goes on). */
const MAX_PAGES = 20;
/** Trash entries younger than this are still being emptied by the request that made them. */
const TRASH_GRACE_MS = 60_000;

export class Janitor {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(private readonly deps: JanitorDeps) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep(), this.deps.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One sweep (skipped when one is under way here or another replica holds the lock). */
  sweep(nowMs: number = Date.now()): Promise<void> {
    this.running ??= this.sweepLocked(nowMs)
      .catch(this.deps.swallowed.at("janitor.sweep"))
      .finally(() => {
        this.running = null;
      });
    return this.running;
  }

  private async sweepLocked(nowMs: number): Promise<void> {
    const { store, replicaId, intervalMs } = this.deps;
    const ttl = Math.max(30_000, 2 * intervalMs);
    if (!(await store.tryLock(LOCK, replicaId, ttl))) return;
    try {
      await this.expireFiles(nowMs);
      await this.emptyTrash(nowMs - TRASH_GRACE_MS);
      await this.removeStaleTemp(nowMs);
    } finally {
      await store.releaseLock(LOCK, replicaId).catch(this.deps.swallowed.at("janitor.release_lock"));
    }
  }

  private async expireFiles(nowMs: number): Promise<void> {
    const { store, deleter, metrics, logger, swallowed } = this.deps;
    // Files a running batch still reads stay in the expiry index: step past them, so they
    // never hold back the expired files behind them.
    let kept = 0;
    for (let page = 0; page < MAX_PAGES; page++) {
      const ids = await store.expiredFileIds(nowMs, BATCH, kept);
      for (const id of ids) {
        const r = await deleter.delete(id, nowMs, swallowed.at("janitor.delete_objects"));
        if (r?.deleted) {
          metrics.janitorDeleted.inc({ what: "expired_file" });
          logger.info("expired file deleted", { file_id: id });
        } else if (r) {
          kept++;
        }
      }
      if (ids.length < BATCH) return;
    }
  }

  private async emptyTrash(beforeMs: number): Promise<void> {
    const entries = await this.deps.store.trash(beforeMs, BATCH);
    if (entries.length === 0) return;
    this.deps.metrics.janitorDeleted.inc({ what: "trash" }, await this.deps.deleter.empty(entries));
  }

  private async removeStaleTemp(nowMs: number): Promise<void> {
    const { objects, metrics } = this.deps;
    if (!objects.removeStaleTemp) return;
    const n = await objects.removeStaleTemp(nowMs - this.deps.staleTempMs);
    if (n > 0) metrics.janitorDeleted.inc({ what: "temp_file" }, n);
  }
}
