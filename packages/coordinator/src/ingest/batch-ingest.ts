// Ingest of a batch (status validating): stream the input file line by line, validate it,
// and either fail the batch with line-numbered errors or write the shard index and queue
// one BullMQ job per shard (status in_progress). One replica ingests a batch at a time (a
// lock); a replica that dies mid-ingest leaves the lock to expire and the monitor of any
// replica runs the ingest again (queuing a shard twice is a no-op).
import { BatchErrorCodes, isBatchgenError, type Logger, type ObjectStore, type SwallowedErrors } from "@batchgen/core";
import type { CoordinatorConfig } from "../coordinator-config.js";
import type { JobStore, LineRun, ShardJobData } from "../job-store.js";
import { RetrySchedule } from "../retry-schedule.js";
import { encodePart, invalidLineError, partKey } from "../result-part.js";
import { InputValidator, type InvalidLine, type ShardRange } from "./input-validator.js";
import { splitLines } from "./split-lines.js";

export interface IngestDeps {
  store: JobStore;
  objects: ObjectStore;
  config: CoordinatorConfig;
  logger: Logger;
  /** Unique per replica: owner of the locks it takes. */
  replicaId: string;
  swallowed: SwallowedErrors;
}

const LOCK_TTL_MS = 30_000;

export function shardIndexKey(batchId: string): string {
  return `batches/${batchId}/shards.json`;
}

/**
 * The shard index object: [firstLine, lineCount, byteStart, byteEnd] per shard (with
 * prefix packing: the first line, the line count and the byte envelope of its runs).
 */
export interface ShardIndex {
  total: number;
  /** Most lines a shard holds (a shard may hold fewer: the last one, or one full of bytes). */
  shardLines: number;
  shards: Array<[number, number, number, number]>;
  /** Prefix packing: each shard's runs of consecutive lines, and the first shard of each window. */
  runs?: LineRun[][];
  windows?: number[];
}

/** The batch metadata key of the extension that runs the valid lines of a file with invalid ones. */
export const SKIP_INVALID_LINES = "skip_invalid_lines";

export function ingestLockName(batchId: string): string {
  return `ingest:${batchId}`;
}

export class BatchIngest {
  private readonly inflight = new Set<Promise<void>>();
  private stopping = false;
  /** Batches whose ingest failed wait before the next attempt (the store or Redis may be down). */
  private readonly retries: RetrySchedule;

  constructor(private readonly deps: IngestDeps) {
    this.retries = new RetrySchedule(deps.config.retryBackoffMs * 5);
  }

  /** Ingest the batch if it is validating and no replica is ingesting it. */
  run(batchId: string): Promise<void> {
    if (this.stopping || this.retries.waiting(batchId)) return Promise.resolve();
    // Nothing awaits an ingest: a failure (Redis away before the lock) is logged, and the
    // batch monitor starts it again while the batch is validating.
    const p = this.runLocked(batchId)
      .catch((err: unknown) => this.deps.logger.error("ingest could not start; it will be retried", { batch_id: batchId, err }))
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
    return p;
  }

  /** Stop reading input; a half-done ingest is left to another replica (its lock is released). */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.inflight]);
  }

  private async runLocked(batchId: string): Promise<void> {
    const { store, replicaId, logger, swallowed } = this.deps;
    const lock = ingestLockName(batchId);
    if (!(await store.tryLock(lock, replicaId, LOCK_TTL_MS))) return;
    // A failed renewal is retried at the next interval; a lock lost for good lets another replica ingest again (idempotent).
    const renew = setInterval(() => void store.renewLock(lock, replicaId, LOCK_TTL_MS).catch(swallowed.at("ingest.renew_lock", { batch_id: batchId })), LOCK_TTL_MS / 3);
    try {
      await this.ingest(batchId);
      this.retries.succeed(batchId);
    } catch (err) {
      if (!this.stopping) logger.error("ingest failed; it will be retried", { batch_id: batchId, ...this.retries.fail(batchId), err });
    } finally {
      clearInterval(renew);
      // Not released, the lock expires after its TTL and the monitor retries.
      await store.releaseLock(lock, replicaId).catch(swallowed.at("ingest.release_lock", { batch_id: batchId }));
    }
  }

  private async ingest(batchId: string): Promise<void> {
    const { store, objects, config, logger } = this.deps;
    const batch = await store.getBatch(batchId);
    if (!batch || batch.status !== "validating") return;
    const served = await store.servedModels(Date.now());
    for (const m of config.models) if (!served.has(m)) served.set(m, { maxModelLen: 0 });
    const validator = new InputValidator({
      endpoint: batch.endpoint,
      strictEndpoint: config.strictEndpoint,
      shardLines: config.shardLines,
      shardMaxBytes: config.shardMaxBytes,
      maxLineBytes: config.maxLineBytes,
      maxReportedErrors: config.maxReportedErrors,
      lookupModel: (m) => served.get(m) ?? null,
      skipInvalidLines: batch.metadata?.[SKIP_INVALID_LINES] === "true",
      prefixWindowLines: config.prefixWindowLines > 0 ? Math.max(config.prefixWindowLines, config.shardLines) : 0,
      prefixKeyChars: config.prefixKeyChars,
    });

    let source: NodeJS.ReadableStream;
    try {
      source = await objects.get(batch.inputKey);
    } catch (err) {
      // Only a missing object fails the batch; a store that fails now is retried (by the monitor).
      if (!isBatchgenError(err) || err.code !== "not_found") throw err;
      await this.fail(batchId, [
        { code: BatchErrorCodes.invalidRequest, message: "The input file's content is missing.", param: "input_file_id", line: null },
      ]);
      return;
    }
    try {
      for await (const line of splitLines(source as AsyncIterable<Uint8Array>, config.maxLineBytes)) {
        if (this.stopping) return;
        validator.add(line);
        if (validator.saturated) break;
      }
    } finally {
      (source as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
    }
    const result = validator.finish();
    if (result.shards.length === 0 || !result.model) {
      logger.info("batch failed validation", { batch_id: batchId, errors: result.errorCount });
      await this.fail(batchId, result.errors);
      return;
    }

    const index: ShardIndex = {
      total: result.total,
      shardLines: config.shardLines,
      shards: result.shards.map((s) => [s.firstLine, s.lineCount, s.byteStart, s.byteEnd]),
    };
    if (result.windows.length > 0) {
      index.runs = result.shards.map((s) => s.runs ?? [[s.firstLine, s.lineCount, s.byteStart, s.byteEnd]]);
      index.windows = result.windows;
    }
    await objects.put(shardIndexKey(batchId), JSON.stringify(index));
    await store.updateBatch(batchId, {
      model: result.model,
      adapters: result.adapters,
      total: result.total,
      shards: result.shards.length,
      shardLines: config.shardLines,
    });
    if (result.invalid.length > 0) {
      await this.writeInvalidLines(batchId, result.shards, result.invalid);
      logger.info("invalid lines skipped", { batch_id: batchId, lines: result.invalid.length });
    }
    const jobs = result.shards.map((s: ShardRange, i): ShardJobData => ({
      batchId,
      shard: s.shard,
      firstLine: s.firstLine,
      lineCount: s.lineCount,
      byteStart: s.byteStart,
      byteEnd: s.byteEnd,
      inputKey: batch.inputKey,
      endpoint: batch.endpoint,
      priority: batch.priority,
      ...(s.runs && s.runs.length > 1 ? { runs: s.runs } : {}),
      ...(s.prefixKey ? { prefixKey: s.prefixKey } : {}),
      ...(result.shardAdapters[i]!.length > 0 ? { adapters: result.shardAdapters[i] } : {}),
    }));
    await store.enqueueShards(result.model, jobs, batch.priority);
    const started = await store.transitionBatch(batchId, ["validating"], "in_progress", { inProgressAtMs: Date.now() });
    if (!started) {
      // Cancelled (or expired) while validating: nothing of it may run.
      // Left queued, a shard of a stopped batch is dropped when leased.
      await store.removeShards(result.model, batchId, jobs.length).catch(this.deps.swallowed.at("ingest.remove_shards", { batch_id: batchId }));
      return;
    }
    logger.info("batch in progress", { batch_id: batchId, lines: result.total, shards: jobs.length, model: result.model });
    await store.publish({ type: "work", model: result.model });
  }

  /**
   * The lines left out go to the error file as line errors: persisted as result parts and
   * marked done like any result, before the shards are queued, so no worker gets them
   * (a lease skips done lines). Each goes with the shard whose runs hold it (with prefix
   * packing a shard's lines are not one range). A second ingest run marks nothing twice.
   */
  private async writeInvalidLines(batchId: string, shards: readonly ShardRange[], invalid: readonly InvalidLine[]): Promise<void> {
    const { store, objects } = this.deps;
    const byLine = new Map(invalid.map((l) => [l.lineIndex, l]));
    for (const s of shards) {
      const lines: InvalidLine[] = [];
      const runs: LineRun[] = s.runs ?? [[s.firstLine, s.lineCount, s.byteStart, s.byteEnd]];
      for (const [first, count] of runs) {
        for (let i = first; i < first + count; i++) {
          const l = byLine.get(i);
          if (l) lines.push(l);
        }
      }
      for (let at = 0; at < lines.length; at += 1000) {
        const chunk = lines.slice(at, at + 1000);
        const part = chunk.map((l) => ({ line: l.lineIndex, ok: false, json: invalidLineError(l.customId, l.code, l.message, l.param, l.lineNumber) }));
        await objects.put(partKey(batchId, s.shard, "ingest_invalid", at / 1000), encodePart(part));
        await store.markLinesDone(batchId, s.shard, chunk.map((l) => ({ line: l.lineIndex, ok: false, promptTokens: 0, completionTokens: 0 })));
      }
    }
  }

  private async fail(batchId: string, errors: Array<{ code: string; message: string; param: string | null; line: number | null }>): Promise<void> {
    await this.deps.store.transitionBatch(batchId, ["validating"], "failed", { errors, failedAtMs: Date.now(), total: 0 });
  }
}
