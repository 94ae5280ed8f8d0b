// One worker's stream (WorkerService.Connect), as protocol.md describes it: Hello ->
// Welcome; credits buy leases (shards taken from the model's queue, sent with only the
// lines not yet done); results are buffered per lease, persisted as a part in object
// storage and marked done in Redis, then acked; locks are extended while the stream
// lives; LeaseDone completes the shard's job, Release and a lost stream put it back.
import { randomUUID } from "node:crypto";
import { GrpcStatus, type Logger, type ObjectStore, type SwallowedErrors } from "@batchgen/core";
import {
  CoordinatorMessageSchema,
  create,
  type CoordinatorMessage,
  type Result,
  type WorkerMessage,
} from "@batchgen/proto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ServerDuplexStream } from "@grpc/grpc-js";
import type { CoordinatorConfig } from "../coordinator-config.js";
import type { CoordinatorMetrics } from "../coordinator-metrics.js";
import type { FleetWorker, JobStore, LeasedShard, ShardJobData, StopReason } from "../job-store.js";
import type { AssignResult, LeaseBroker, LeaseTaker } from "../lease-broker.js";
import { encodePart, errorLine, lineIds, partKey, responseLine } from "../result-part.js";
import { readShardLines, shardDoneLines, shardLineIndexes } from "../shard-lines.js";
import { backoffMs, type ShardFailureReason, type ShardFailures } from "./shard-failures.js";

/** The close reason of sessions ended by their coordinator stopping (not the worker's fault). */
export const STOPPING = "coordinator stopping";

export type WorkerCall = ServerDuplexStream<WorkerMessage, CoordinatorMessage>;
type OutgoingMessage = NonNullable<MessageInitShape<typeof CoordinatorMessageSchema>["msg"]>;

export interface SessionDeps {
  store: JobStore;
  objects: ObjectStore;
  config: CoordinatorConfig;
  logger: Logger;
  metrics: CoordinatorMetrics;
  broker: LeaseBroker;
  failures: ShardFailures;
  /** Where errors of background steps are logged and counted. */
  swallowed: SwallowedErrors;
  /** Called when a batch may have every line done. */
  onBatchDone(batchId: string): void;
  /** Called when a shard went back to its queue. */
  onShardRequeued(model: string): void;
  onClose(session: WorkerSession): void;
}

interface PendingResult {
  line: number;
  ok: boolean;
  json: string;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
}

interface ActiveLease {
  id: string;
  data: ShardJobData;
  shard: LeasedShard;
  batchTotal: number;
  /** custom_id of each line sent in the lease, by line index. */
  lines: Map<number, string>;
  /** Lines of the lease a Result arrived for (what the worker no longer holds). */
  answered: Set<number>;
  /** Failed attempts in a row to store this lease's results; the next attempt waits until retryAtMs. */
  writeFailures: number;
  retryAtMs: number;
  /** Some result of this lease was stored: earlier failures of the shard are forgotten. */
  progressed: boolean;
  pending: PendingResult[];
  flushing: Promise<void>;
  /** A persist is queued that will take whatever is pending when it runs. */
  flushQueued: boolean;
  seq: number;
  /** Its BullMQ job is finished (completed): nothing more to do with the lock. */
  finished: boolean;
  /** Its lock expired while held: the shard may be leased elsewhere. */
  lost: boolean;
  /** Its batch was cancelled or expired. */
  stopped: boolean;
  /** The worker sent LeaseDone or Release: it holds nothing of it any more. */
  doneByWorker: boolean;
}

export class WorkerSession implements LeaseTaker {
  readonly sessionId = randomUUID();
  model = "";
  /** LoRA adapters the worker serves (Hello) and those its engine holds now (heartbeats). */
  private adapters: string[] = [];
  readonly adaptersLoaded = new Set<string>();
  workerId = "";
  private credit = 0;
  /** The most lines this worker may hold: what its Hello declared, within config.maxWorkerCredit. */
  private creditLimit = 0;
  private welcomed = false;
  private closed = false;
  private lastSeen = Date.now();
  private readonly leases = new Map<string, ActiveLease>();
  private readonly timers: NodeJS.Timeout[] = [];
  private chain: Promise<void> = Promise.resolve();
  private readonly log: Logger;
  private fleet: FleetWorker | null = null;

  constructor(
    private readonly call: WorkerCall,
    private readonly deps: SessionDeps,
  ) {
    this.log = deps.logger.child({ session: this.sessionId });
    call.on("data", (m: WorkerMessage) => this.onMessage(m));
    call.on("end", () => this.closeLogged("stream ended"));
    call.on("cancelled", () => this.closeLogged("stream cancelled"));
    call.on("error", () => this.closeLogged("stream error"));
  }

  wantsWork(): boolean {
    return this.welcomed && !this.closed && this.credit > 0;
  }

  // ---- messages from the worker

  private onMessage(m: WorkerMessage): void {
    if (this.closed) return;
    this.lastSeen = Date.now();
    const msg = m.msg;
    if (!this.welcomed && msg.case !== "hello") {
      this.fail(GrpcStatus.INVALID_ARGUMENT, "the first message of a stream must be Hello");
      return;
    }
    switch (msg.case) {
      case "hello":
        this.serialize(() => this.onHello(msg.value));
        break;
      case "credit":
        // Capped by what the worker said it can hold: a client asking for a huge credit
        // cannot take every shard of a queue and sit on them.
        this.credit = Math.min(this.credit + msg.value.requests, this.creditLimit - this.heldLines());
        if (this.wantsWork()) this.deps.broker.want(this);
        break;
      case "result":
        this.onResult(msg.value);
        break;
      case "heartbeat":
        this.onHeartbeat(msg.value);
        break;
      case "leaseDone":
        this.releaseHold(msg.value.leaseId);
        this.serialize(() => this.onLeaseDone(msg.value.leaseId));
        break;
      case "release":
        this.releaseHold(msg.value.leaseId);
        this.serialize(() => this.onRelease(msg.value.leaseId));
        break;
      default:
        break;
    }
  }

  /** Lines leased to this worker and not yet answered (Result, LeaseDone or Release). */
  private heldLines(): number {
    let n = 0;
    for (const l of this.leases.values()) if (!l.doneByWorker) n += l.lines.size - l.answered.size;
    return n;
  }

  /** The worker holds nothing of the lease any more (counted now, in stream order, for the credit cap). */
  private releaseHold(leaseId: string): void {
    const lease = this.leases.get(leaseId);
    if (lease) lease.doneByWorker = true;
  }

  /** Lease bookkeeping steps run one after another, in stream order. */
  private serialize(step: () => Promise<void>): void {
    this.chain = this.chain.then(step).catch((err: unknown) => this.background("worker_session.handle_message", err));
  }

  private async onHello(h: { workerId: string; model: string; maxModelLen: number; engine: string; maxConcurrency: number; loras: string[] }): Promise<void> {
    if (this.welcomed) {
      this.fail(GrpcStatus.INVALID_ARGUMENT, "Hello may be sent only once");
      return;
    }
    if (h.model.trim() === "") {
      this.fail(GrpcStatus.INVALID_ARGUMENT, "Hello must name the model the worker serves");
      return;
    }
    const { store, config, metrics } = this.deps;
    this.model = h.model;
    this.workerId = h.workerId || this.sessionId;
    // 0: a worker that declared nothing gets the coordinator's ceiling.
    this.creditLimit = Math.min(h.maxConcurrency || config.maxWorkerCredit, config.maxWorkerCredit);
    this.adapters = h.loras.filter((a) => a.trim() !== "" && a !== h.model);
    await store.registerModel(h.model, h.maxModelLen, this.modelTtlMs(), this.adapters);
    await store.watchModel(h.model);
    if (this.closed) return;
    this.welcomed = true;
    metrics.workersConnected.inc({ model: h.model });
    this.fleet = {
      sessionId: this.sessionId,
      workerId: this.workerId,
      model: h.model,
      engine: h.engine,
      tokensPerSecond: 0,
      running: 0,
      waiting: 0,
      kvBlocksUsed: 0,
      kvBlocksTotal: 0,
      adapters: this.adapters,
      adaptersLoaded: [],
      leases: 0,
      connectedAtMs: Date.now(),
      lastHeartbeatAtMs: Date.now(),
    };
    void this.reportFleet();
    this.log.info("worker connected", { worker_id: this.workerId, model: h.model, engine: h.engine });
    this.send({
      case: "welcome",
      value: { sessionId: this.sessionId, heartbeatIntervalMs: config.heartbeatIntervalMs, ackEvery: config.ackEvery },
    });
    this.timers.push(setInterval(() => this.flushAll(), config.flushIntervalMs));
    const keepAliveMs = Math.min(config.heartbeatIntervalMs, Math.floor(config.lockDurationMs / 3));
    this.timers.push(setInterval(() => void this.keepAlive(h.maxModelLen).catch((err: unknown) => this.background("worker_session.keep_alive", err)), keepAliveMs));
    if (this.wantsWork()) this.deps.broker.want(this);
  }

  /** The worker's own numbers, kept for the fleet view (GET /v1/fleet). */
  private onHeartbeat(hb: { running: number; waiting: number; kvBlocksUsed: bigint; kvBlocksTotal: bigint; tokensPerSecond: number; lorasLoaded: string[] }): void {
    this.adaptersLoaded.clear();
    for (const a of hb.lorasLoaded) this.adaptersLoaded.add(a);
    if (!this.fleet) return;
    Object.assign(this.fleet, {
      running: hb.running,
      waiting: hb.waiting,
      kvBlocksUsed: Number(hb.kvBlocksUsed),
      kvBlocksTotal: Number(hb.kvBlocksTotal),
      tokensPerSecond: hb.tokensPerSecond,
      adaptersLoaded: [...this.adaptersLoaded],
      lastHeartbeatAtMs: Date.now(),
    });
    void this.reportFleet();
  }

  private async reportFleet(): Promise<void> {
    if (!this.fleet || this.closed) return;
    this.fleet.leases = this.leases.size;
    // The fleet record expires by itself; the next heartbeat writes it again.
    await this.deps.store.putWorker(this.fleet, this.modelTtlMs()).catch((e: unknown) => this.background("worker_session.put_worker", e));
  }

  private modelTtlMs(): number {
    return this.deps.config.heartbeatIntervalMs * 3;
  }

  private onResult(r: Result): void {
    const lease = this.leases.get(r.leaseId);
    const line = Number(r.lineIndex);
    const customId = lease?.lines.get(line);
    if (!lease || customId === undefined) {
      this.log.debug("result for an unknown lease or line dropped", { lease_id: r.leaseId, line });
      return;
    }
    let ok = false;
    let json: string;
    const ids = lineIds(lease.id, line);
    const o = r.outcome;
    if (o.case === "response") {
      const status = o.value.statusCode || 200;
      try {
        json = responseLine(ids, customId, status, o.value.bodyJson);
        ok = status >= 200 && status < 300;
      } catch {
        json = errorLine(ids, customId, "invalid_response", "The worker returned a response body that is not valid JSON.");
      }
    } else if (o.case === "error") {
      json = errorLine(ids, customId, o.value.code || "engine_error", o.value.message);
    } else {
      json = errorLine(ids, customId, "engine_error", "The worker returned a result without a response or an error.");
    }
    lease.answered.add(line);
    lease.pending.push({
      line,
      ok,
      json,
      promptTokens: r.usage?.promptTokens ?? 0,
      completionTokens: r.usage?.completionTokens ?? 0,
      cachedTokens: r.usage?.cachedTokens ?? 0,
    });
    if (lease.pending.length >= this.deps.config.ackEvery && !lease.flushQueued) void this.flush(lease);
  }

  private async onLeaseDone(leaseId: string): Promise<void> {
    const lease = this.leases.get(leaseId);
    if (!lease) return;
    lease.doneByWorker = true;
    if (!(await this.flushUntilStored(lease))) return;
    if (!lease.finished && !lease.lost) {
      const done = await shardDoneLines(this.deps.store, lease.data);
      if (lease.stopped || done.every(Boolean)) await this.finish(lease);
      // Lines without a result (a worker that skipped some): run them again.
      else await this.requeue(lease);
    }
    await this.drop(lease);
  }

  private async onRelease(leaseId: string): Promise<void> {
    const lease = this.leases.get(leaseId);
    if (!lease) return;
    lease.doneByWorker = true;
    if (!(await this.flushUntilStored(lease))) return;
    if (!lease.finished && !lease.lost) {
      if (lease.stopped) await this.finish(lease);
      else await this.requeue(lease);
    }
    await this.drop(lease);
  }

  // ---- leasing

  async assign(shard: LeasedShard): Promise<AssignResult> {
    const d = shard.data;
    if (!this.wantsWork()) {
      await shard.release();
      return "busy";
    }
    // Reserve the shard's lines now (assigns overlap); what is not sent is given back.
    this.credit -= d.lineCount;
    let sent = 0;
    try {
      const result = await this.lease(shard);
      if (result === "leased") sent = this.leases.get(shard.token)?.lines.size ?? 0;
      return result;
    } finally {
      this.credit += d.lineCount - sent;
      if (this.wantsWork()) this.deps.broker.want(this);
    }
  }

  private async lease(shard: LeasedShard): Promise<AssignResult> {
    const { store, objects, config, metrics } = this.deps;
    const d = shard.data;
    const batch = await store.getBatch(d.batchId);
    if (batch?.status === "validating") {
      // Queued by an ingest that has not marked the batch in progress yet.
      await shard.release();
      return "busy";
    }
    if (!batch || batch.status !== "in_progress" || batch.stopReason) {
      await shard.complete();
      return "skipped";
    }
    const done = await shardDoneLines(store, d);
    if (done.every(Boolean)) {
      if (await shard.complete()) metrics.shardsDone.inc();
      return "skipped";
    }
    // `done` is in shard line order; skipped lines (done ones) are not parsed at all.
    const doneLines = new Set(shardLineIndexes(d).filter((_, i) => done[i]));
    const todo = await readShardLines(objects, d, (i) => doneLines.has(i));
    const lease: ActiveLease = {
      id: shard.token,
      data: d,
      shard,
      batchTotal: batch.total,
      lines: new Map(todo.map((l) => [l.lineIndex, l.customId])),
      answered: new Set(),
      writeFailures: 0,
      retryAtMs: 0,
      progressed: false,
      pending: [],
      flushing: Promise.resolve(),
      flushQueued: false,
      seq: 0,
      finished: false,
      lost: false,
      stopped: false,
      doneByWorker: false,
    };
    await store.putLease(d.batchId, lease.id, Date.now() + config.lockDurationMs);
    if (this.closed) {
      await shard.release();
      await store.removeLease(d.batchId, lease.id);
      return "busy";
    }
    this.leases.set(lease.id, lease);
    metrics.leasesHeld.inc();
    this.send({
      case: "lease",
      value: {
        leaseId: lease.id,
        batchId: d.batchId,
        shardIndex: d.shard,
        endpoint: d.endpoint,
        totalLines: d.lineCount,
        priority: d.priority,
        // A line's url travels only where it differs from the lease's endpoint (mixed batches).
        lines: todo.map((l) => ({
          lineIndex: BigInt(l.lineIndex),
          customId: l.customId,
          bodyJson: l.bodyJson,
          url: l.url === d.endpoint ? "" : l.url,
        })),
      },
    });
    return "leased";
  }

  /** Stop the lines of a batch this worker holds (cancel or expiry). */
  cancelBatch(batchId: string, reason: StopReason): void {
    let any = false;
    for (const lease of this.leases.values()) {
      if (lease.data.batchId !== batchId || lease.stopped) continue;
      lease.stopped = true;
      any = true;
    }
    if (any && !this.closed) this.send({ case: "cancel", value: { batchId, leaseId: "", reason } });
  }

  // ---- persistence

  private flushAll(): void {
    const now = Date.now();
    for (const lease of this.leases.values()) {
      if (lease.pending.length > 0 && !lease.finished && now >= lease.retryAtMs) void this.flush(lease);
    }
  }

  /**
   * Flush, and retry with backoff until the lease's results are stored; false when
   * they could not be (the lease was given up: see giveUp).
   */
  private async flushUntilStored(lease: ActiveLease): Promise<boolean> {
    for (;;) {
      await this.flush(lease);
      if (lease.pending.length === 0) return true;
      if (lease.finished || this.closed) return false;
      if (lease.writeFailures >= this.deps.config.resultWriteAttempts) {
        await this.giveUp(lease, "results_not_stored");
        return false;
      }
      await new Promise((r) => setTimeout(r, Math.max(0, lease.retryAtMs - Date.now())));
    }
  }

  /** Persist the lease's buffered results (part, then done marks), then ack them. */
  private flush(lease: ActiveLease): Promise<void> {
    lease.flushQueued = true;
    // persist() handles store failures itself; anything else is logged so the chain goes on.
    lease.flushing = lease.flushing.then(() => this.persist(lease)).catch((err: unknown) => this.background("worker_session.store_results", err));
    return lease.flushing;
  }

  private async persist(lease: ActiveLease): Promise<void> {
    lease.flushQueued = false;
    if (lease.pending.length === 0) return;
    const { store, objects, metrics } = this.deps;
    const items = lease.pending.splice(0);
    const d = lease.data;
    let mark;
    let written = false;
    const key = partKey(d.batchId, d.shard, lease.id, lease.seq++);
    try {
      await objects.put(key, encodePart(items));
      written = true;
      mark = await store.markLinesDone(
        d.batchId,
        d.shard,
        items.map((i) => ({ line: i.line, ok: i.ok, promptTokens: i.promptTokens, completionTokens: i.completionTokens, cachedTokens: i.cachedTokens })),
      );
    } catch (err) {
      // Not acked: keep them for the next attempt, after a backoff.
      lease.pending.unshift(...items);
      lease.writeFailures++;
      lease.retryAtMs = Date.now() + backoffMs(lease.writeFailures, this.deps.config.retryBackoffMs);
      metrics.resultWriteRetries.inc();
      this.log.warn("storing results failed; will retry", { lease_id: lease.id, attempt: lease.writeFailures, err });
      // The part was written but Redis did not count it: remove it, the next attempt writes another.
      if (written) await objects.delete(key).catch((e: unknown) => this.background("worker_session.delete_unacked_part", e));
      if (lease.writeFailures >= this.deps.config.resultWriteAttempts && !lease.doneByWorker) {
        this.serialize(() => this.giveUp(lease, "results_not_stored"));
      }
      return;
    }
    lease.writeFailures = 0;
    lease.retryAtMs = 0;
    if (!lease.progressed && mark.newlyDone > 0) {
      lease.progressed = true;
      await store.clearShardFailure(d.batchId, d.shard).catch((e: unknown) => this.background("worker_session.clear_shard_failures", e));
    }
    if (mark.newlyDone < 0) {
      // The batch was finalized meanwhile: these results come too late to count.
      await objects.delete(key).catch((e: unknown) => this.background("worker_session.delete_late_part", e));
      if (!this.closed) this.send({ case: "ack", value: { leaseId: lease.id, lineIndexes: items.map((i) => BigInt(i.line)) } });
      return;
    }
    metrics.results.inc(items.length);
    metrics.linesCompleted.inc({ outcome: "response" }, mark.newlyOk);
    metrics.linesCompleted.inc({ outcome: "error" }, mark.newlyDone - mark.newlyOk);
    metrics.tokensCompleted.inc({ kind: "prompt" }, mark.newPromptTokens);
    metrics.tokensCompleted.inc({ kind: "completion" }, mark.newCompletionTokens);
    metrics.tokensCompleted.inc({ kind: "prompt_cached" }, mark.newCachedTokens);
    if (!this.closed) this.send({ case: "ack", value: { leaseId: lease.id, lineIndexes: items.map((i) => BigInt(i.line)) } });
    if (mark.shardDone >= d.lineCount && !lease.finished && !lease.lost) await this.finish(lease);
    if (mark.batchDone >= lease.batchTotal) this.deps.onBatchDone(d.batchId);
  }

  private async finish(lease: ActiveLease): Promise<void> {
    lease.finished = true;
    if (await lease.shard.complete()) this.deps.metrics.shardsDone.inc();
    // The lock was gone: another lease holds (or finished) the shard.
    else this.loseLease(lease);
  }

  /** The lease's lock expired while held: stop extending it and tell the worker to drop it. */
  private loseLease(lease: ActiveLease): void {
    if (lease.lost) return;
    // Counted in lease_expiries_total by the stalled checker that put the shard back.
    lease.lost = true;
    this.log.warn("lease lost: its lock expired", { lease_id: lease.id, batch_id: lease.data.batchId });
    if (!this.closed && !lease.doneByWorker && this.leases.has(lease.id)) {
      this.send({ case: "cancel", value: { batchId: lease.data.batchId, leaseId: lease.id, reason: "lease_lost" } });
    }
  }

  private async requeue(lease: ActiveLease): Promise<void> {
    lease.finished = true;
    if (await lease.shard.release()) {
      this.deps.metrics.shardsRetried.inc();
      this.deps.onShardRequeued(this.model);
    }
  }

  /**
   * The lease failed (its results cannot be stored, or its worker is gone): stop it, tell
   * the worker, count the failure, and run the shard again after a backoff, or park it.
   */
  private async giveUp(lease: ActiveLease, reason: ShardFailureReason): Promise<void> {
    if (lease.finished || lease.lost || !this.leases.has(lease.id)) return;
    lease.finished = true;
    const dropped = lease.pending.splice(0).length;
    this.log.warn("giving up a lease", { lease_id: lease.id, batch_id: lease.data.batchId, shard: lease.data.shard, reason, dropped });
    if (!lease.doneByWorker && !this.closed) {
      this.send({ case: "cancel", value: { batchId: lease.data.batchId, leaseId: lease.id, reason } });
    }
    await this.failShard(lease, reason);
    await this.drop(lease);
  }

  /** Count a failure of the lease's shard; complete its job when that parked it, else put it back after a backoff. */
  private async failShard(lease: ActiveLease, reason: ShardFailureReason): Promise<void> {
    let outcome;
    try {
      outcome = await this.deps.failures.record(lease.data, reason);
    } catch (err) {
      // Redis is failing too: the shard goes back now; its lock would expire anyway.
      this.background("worker_session.count_shard_failure", err);
      outcome = { parked: false as const, retryInMs: 0 };
    }
    if (outcome.parked) {
      await lease.shard.complete();
      return;
    }
    if (await lease.shard.retryLater(outcome.retryInMs)) {
      this.deps.metrics.shardsRetried.inc();
      setTimeout(() => this.deps.onShardRequeued(this.model), outcome.retryInMs).unref();
    }
  }

  private async drop(lease: ActiveLease): Promise<void> {
    if (!this.leases.delete(lease.id)) return;
    this.deps.metrics.leasesHeld.dec();
    await this.deps.store.removeLease(lease.data.batchId, lease.id).catch((e: unknown) => this.background("worker_session.remove_lease", e));
  }

  /** A background step failed: nothing waits on it, so it is logged and counted at its site (its effect is retried or expires). */
  private background(site: string, err: unknown): void {
    this.deps.swallowed.report(site, err, { session: this.sessionId });
  }

  /** Extend the locks of held leases, refresh their expiry and the model's registration. */
  private async keepAlive(maxModelLen: number): Promise<void> {
    const { store, config } = this.deps;
    if (this.closed) return;
    if (Date.now() - this.lastSeen > config.heartbeatIntervalMs * 3) {
      this.fail(GrpcStatus.DEADLINE_EXCEEDED, "no message from the worker within 3 heartbeat intervals");
      return;
    }
    await store.registerModel(this.model, maxModelLen, this.modelTtlMs(), this.adapters).catch((e: unknown) => this.background("worker_session.refresh_model", e));
    for (const lease of [...this.leases.values()]) {
      if (lease.finished || lease.lost) continue;
      const ok = await lease.shard.extend(config.lockDurationMs);
      if (!ok) {
        if (!lease.finished) this.loseLease(lease);
        continue;
      }
      await store.putLease(lease.data.batchId, lease.id, Date.now() + config.lockDurationMs).catch((e: unknown) => this.background("worker_session.refresh_lease", e));
    }
  }

  // ---- stream

  private send(msg: OutgoingMessage): void {
    if (this.closed) return;
    try {
      this.call.write(create(CoordinatorMessageSchema, { msg }));
    } catch (err) {
      this.log.warn("write to worker failed", { err });
    }
  }

  private fail(code: number, details: string): void {
    if (this.closed) return;
    this.log.warn("closing worker stream", { code, details });
    try {
      this.call.emit("error", { code, details });
    } catch {
      // already ended
    }
    this.closeLogged(details);
  }

  /** close() from an event handler: nothing awaits it, so a failure is logged and counted. */
  private closeLogged(reason: string): void {
    this.close(reason).catch((err: unknown) => this.background("worker_session.close", err));
  }

  /** End the session: persist what arrived, put unfinished shards back, forget it. */
  async close(reason: string, status?: { code: number; details: string }): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.deps.broker.forget(this);
    if (this.welcomed) this.deps.metrics.workersConnected.dec({ model: this.model });
    // A record not removed expires by itself (its TTL).
    if (this.fleet) void this.deps.store.removeWorker(this.sessionId).catch((e: unknown) => this.background("worker_session.remove_worker", e));
    this.log.info("worker disconnected", { worker_id: this.workerId, reason, leases: this.leases.size });
    await this.chain;
    // A stream that broke under held leases is the worker's failure (counted: a shard that
    // kills its workers gets parked); a coordinator that stops is not.
    const workerFault = reason !== STOPPING;
    for (const lease of [...this.leases.values()]) {
      await this.flush(lease);
      if (!lease.finished && !lease.lost) {
        if (lease.stopped) await this.finish(lease);
        else if (workerFault && !lease.doneByWorker) {
          lease.finished = true;
          await this.failShard(lease, "worker_lost");
        } else await this.requeue(lease);
      }
      await this.drop(lease);
    }
    try {
      if (status) this.call.emit("error", status);
      else this.call.end();
    } catch {
      // already ended
    }
    this.deps.onClose(this);
  }
}
