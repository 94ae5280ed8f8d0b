// Finalizing a batch: once every line is done (or a cancel / the completion window
// stopped it and its workers stopped), merge the result parts in input order into
// output.jsonl (responses) and errors.jsonl (line errors, and lines that never ran), each
// line exactly once (the first part holding a line wins), as streaming uploads; then
// register both as files and set the final status with exact request counts. One replica
// finalizes a batch at a time (a lock); a replica that dies mid-way leaves it to another.
import { newId, type BatchStatus, type Logger, type ObjectStore, type SwallowedErrors } from "@batchgen/core";
import type { JobStore, BatchRecord, LineRun } from "../job-store.js";
import { shardIndexKey, type ShardIndex } from "../ingest/batch-ingest.js";
import { decodePart, errorLine, partsPrefix, shardOfPartKey } from "../result-part.js";
import { readRuns } from "../shard-lines.js";
import { UploadSink } from "./upload-sink.js";
import { SHARD_PARKED } from "../grpc/shard-failures.js";
import { RetrySchedule } from "../retry-schedule.js";

export interface FinalizerDeps {
  store: JobStore;
  objects: ObjectStore;
  logger: Logger;
  replicaId: string;
  swallowed: SwallowedErrors;
  /** Base of the backoff between failed finalize attempts (x5; doubles, capped at 60 s). */
  retryBackoffMs: number;
}

const LOCK_TTL_MS = 30_000;

type Outcome = "completed" | "cancelled" | "expired";

export function outputFileKey(fileId: string): string {
  return `files/${fileId}`;
}

/** What finalizing this batch would end in now, or null if it is not ready. */
export function finalOutcome(b: BatchRecord): Outcome | null {
  if (b.status === "cancelling") return "cancelled";
  if (b.status !== "in_progress" && b.status !== "finalizing") return null;
  if (b.stopReason === "expired") return "expired";
  if (b.stopReason === "cancelled") return "cancelled";
  return b.completed + b.failed >= b.total ? "completed" : null;
}

export class BatchFinalizer {
  private readonly running = new Map<string, Promise<boolean>>();
  /** Batches whose finalize failed wait before the next attempt (the store may be down). */
  private readonly retries: RetrySchedule;
  private stopping = false;

  constructor(private readonly deps: FinalizerDeps) {
    this.retries = new RetrySchedule(deps.retryBackoffMs * 5);
  }

  /** Finalize if ready and no other replica is at it; true when this call finished the batch. */
  finalize(batchId: string): Promise<boolean> {
    if (this.stopping) return Promise.resolve(false);
    const current = this.running.get(batchId);
    if (current) return current.then(() => false);
    if (this.retries.waiting(batchId)) return Promise.resolve(false);
    const p = this.finalizeLocked(batchId).finally(() => this.running.delete(batchId));
    this.running.set(batchId, p);
    return p;
  }

  /** Let finalizations under way finish; start no new one. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.running.values()]);
  }

  private async finalizeLocked(batchId: string): Promise<boolean> {
    const { store, replicaId, logger, swallowed } = this.deps;
    const lock = `finalize:${batchId}`;
    try {
      if (!(await store.tryLock(lock, replicaId, LOCK_TTL_MS))) return false;
      // A failed renewal is retried at the next interval; finalizing twice is idempotent (reserved file ids).
      const renew = setInterval(() => void store.renewLock(lock, replicaId, LOCK_TTL_MS).catch(swallowed.at("finalize.renew_lock", { batch_id: batchId })), LOCK_TTL_MS / 3);
      try {
        const done = await this.run(batchId);
        this.retries.succeed(batchId);
        return done;
      } finally {
        clearInterval(renew);
        // Not released, the lock expires after its TTL.
        await store.releaseLock(lock, replicaId).catch(swallowed.at("finalize.release_lock", { batch_id: batchId }));
      }
    } catch (err) {
      const { attempt, retryInMs } = this.retries.fail(batchId);
      logger.error("finalize failed; it will be retried", { batch_id: batchId, attempt, retry_in_ms: retryInMs, err });
      return false;
    }
  }

  private async run(batchId: string): Promise<boolean> {
    const { store, objects, logger } = this.deps;
    const batch = await store.getBatch(batchId);
    if (!batch) return false;
    const outcome = finalOutcome(batch);
    if (!outcome) return false;
    const from: BatchStatus = batch.status;
    if (from === "in_progress") {
      await store.transitionBatch(batchId, ["in_progress"], "finalizing", { finalizingAtMs: Date.now() });
    }
    const ids = await store.reserveResultFileIds(batchId, { output: newId("file"), error: newId("file") });
    const out = new UploadSink(objects, outputFileKey(ids.output));
    const err = new UploadSink(objects, outputFileKey(ids.error));
    let sizes: [{ size: number }, { size: number }];
    try {
      await this.merge(batch, outcome, out, err);
      sizes = await Promise.all([out.end(), err.end()]);
    } catch (e) {
      out.abort();
      err.abort();
      throw e;
    }

    const nowMs = Date.now();
    const register = async (id: string, sink: UploadSink, size: number, kind: string): Promise<string | null> => {
      if (sink.lines === 0) {
        await objects.delete(outputFileKey(id));
        return null;
      }
      await store.createFile({
        id,
        tenant: batch.tenant,
        bytes: size,
        createdAtMs: nowMs,
        filename: `${batchId}_${kind}.jsonl`,
        purpose: "batch_output",
        key: outputFileKey(id),
        expiresAtMs: batch.outputExpiresAfterS === null ? null : nowMs + batch.outputExpiresAfterS * 1000,
      });
      return id;
    };
    const outputFileId = await register(ids.output, out, sizes[0].size, "output");
    const errorFileId = await register(ids.error, err, sizes[1].size, "error");
    const stamp =
      outcome === "completed" ? { completedAtMs: nowMs } : outcome === "cancelled" ? { cancelledAtMs: nowMs } : { expiredAtMs: nowMs };
    const moved = await store.transitionBatch(batchId, ["in_progress", "finalizing", "cancelling"], outcome, {
      ...stamp,
      ...(batch.finalizingAtMs === null && outcome !== "cancelled" ? { finalizingAtMs: nowMs } : {}),
      outputFileId,
      errorFileId,
      completed: out.lines,
      failed: err.lines,
    });
    if (!moved) return false;
    logger.info("batch finalized", { batch_id: batchId, status: outcome, completed: out.lines, failed: err.lines });
    // The batch is final; leftovers of these two only cost space (the parts folder is also
    // trashed with the input file).
    await objects.deletePrefix(partsPrefix(batchId)).catch(this.deps.swallowed.at("finalize.delete_parts", { batch_id: batchId }));
    await store.dropLineState(batchId).catch(this.deps.swallowed.at("finalize.drop_line_state", { batch_id: batchId }));
    return true;
  }

  /**
   * Every line of the batch, in input order, into the output or the error sink. Shards
   * are merged a window at a time: without prefix packing a window is one shard of
   * consecutive lines; with it, the shards of one packing window, which together hold a
   * run of consecutive lines (so only that window's results are held at once).
   */
  private async merge(batch: BatchRecord, outcome: Outcome, out: UploadSink, err: UploadSink): Promise<void> {
    const { objects } = this.deps;
    if (batch.total === 0 || batch.shards === 0) return;
    const index = JSON.parse((await objects.getBytes(shardIndexKey(batch.id))).toString("utf8")) as ShardIndex;
    const parked = await this.deps.store.parkedShards(batch.id);
    const keys = objects.list(partsPrefix(batch.id))[Symbol.asyncIterator]();
    let next = await keys.next();
    const starts = index.windows ?? index.shards.map((_, i) => i);

    for (let w = 0; w < starts.length; w++) {
      const first = starts[w]!;
      const end = w + 1 < starts.length ? starts[w + 1]! : index.shards.length;
      const results = new Map<number, { ok: boolean; json: string }>();
      while (!next.done && shardOfPartKey(batch.id, next.value) < end) {
        if (shardOfPartKey(batch.id, next.value) >= first) {
          const text = (await objects.getBytes(next.value)).toString("utf8");
          for (const p of decodePart(text)) {
            if (!results.has(p.line)) results.set(p.line, { ok: p.ok, json: p.json });
          }
        }
        next = await keys.next();
      }
      const runs = windowRuns(index, first, end);
      const parkedLines = parkedLinesOf(index, parked, first, end);
      let customIds: Map<number, string> | null = null;
      for (const [firstLine, count] of runs) {
        for (let line = firstLine; line < firstLine + count; line++) {
          const r = results.get(line);
          if (r) {
            await (r.ok ? out : err).writeLine(r.json);
            continue;
          }
          customIds ??= await this.customIdsOf(batch, runs);
          const customId = customIds.get(line) ?? "";
          const why = parkedLines.get(line);
          await err.writeLine(why !== undefined ? errorLine(null, customId, SHARD_PARKED, why) : notRunLine(customId, outcome));
        }
      }
    }
  }

  private async customIdsOf(batch: BatchRecord, runs: LineRun[]): Promise<Map<number, string>> {
    const ids = await readRuns(this.deps.objects, batch.inputKey, runs, (raw, line) => [line, customIdOf(raw)] as const);
    return new Map(ids);
  }
}

/** A line's custom_id; "" for a line that is not a readable request (an invalid line a skip_invalid_lines batch kept). */
function customIdOf(raw: string): string {
  try {
    const id = (JSON.parse(raw) as { custom_id?: unknown } | null)?.custom_id;
    return typeof id === "string" ? id : "";
  } catch {
    return "";
  }
}

/** The lines of shards [first, end) as runs of consecutive lines, in line order. */
/** The lines of the window's parked shards, with the reason each shard was parked. */
function parkedLinesOf(index: ShardIndex, parked: Map<number, string>, first: number, end: number): Map<number, string> {
  const lines = new Map<number, string>();
  if (parked.size === 0) return lines;
  for (let s = first; s < end; s++) {
    const why = parked.get(s);
    const entry = index.shards[s];
    if (why === undefined || !entry) continue;
    for (const [firstLine, count] of index.runs?.[s] ?? [entry]) {
      for (let line = firstLine; line < firstLine + count; line++) lines.set(line, why);
    }
  }
  return lines;
}

function windowRuns(index: ShardIndex, first: number, end: number): LineRun[] {
  const runs: LineRun[] = [];
  for (let s = first; s < end; s++) {
    const entry = index.shards[s];
    if (!entry) continue;
    runs.push(...(index.runs?.[s] ?? [entry]));
  }
  runs.sort((a, b) => a[0] - b[0]);
  const merged: LineRun[] = [];
  for (const r of runs) {
    const last = merged[merged.length - 1];
    if (last && last[0] + last[1] === r[0]) {
      merged[merged.length - 1] = [last[0], last[1] + r[1], Math.min(last[2], r[2]), Math.max(last[3], r[3])];
    } else {
      merged.push([...r]);
    }
  }
  return merged;
}

function notRunLine(customId: string, outcome: Outcome): string {
  if (outcome === "cancelled") return errorLine(null, customId, "batch_cancelled", "This request was not run: the batch was cancelled.");
  if (outcome === "expired") {
    return errorLine(null, customId, "batch_expired", "This request was not run: the batch expired before it could be completed.");
  }
  return errorLine(null, customId, "result_missing", "This request's result was lost; please resubmit it.");
}
