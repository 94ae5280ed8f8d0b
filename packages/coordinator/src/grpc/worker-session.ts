// One worker's stream (WorkerService.Connect), as protocol.md describes it: Hello ->
// Welcome; credits buy leases (shards taken from the model's queue, sent with only the
// lines not yet done); results are buffered per lease, persisted as a part in object
// storage and marked done in Redis, then acked; locks are extended while the stream
// lives; LeaseDone completes the shard's job, Release and a lost stream put it back.
import { randomUUID } from "node:crypto";
import { GrpcStatus, type Logger, type ObjectStore } from "@batchgen/core";
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

export type WorkerCall = ServerDuplexStream<WorkerMessage, CoordinatorMessage>;
type OutgoingMessage = NonNullable<MessageInitShape<typeof CoordinatorMessageSchema>["msg"]>;

export interface SessionDeps {
  store: JobStore;
  objects: ObjectStore;
  config: CoordinatorConfig;
  logger: Logger;
  metrics: CoordinatorMetrics;
  broker: LeaseBroker;
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
  workerId = "";
  private credit = 0;
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
    call.on("end", () => void this.close("stream ended"));
    call.on("cancelled", () => void this.close("stream cancelled"));
    call.on("error", () => void this.close("stream error"));
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
        this.credit += msg.value.requests;
        if (this.wantsWork()) this.deps.broker.want(this);
        break;
      case "result":
        this.onResult(msg.value);
        break;
      case "heartbeat":
        this.onHeartbeat(msg.value);
        break;
      case "leaseDone":
        this.serialize(() => this.onLeaseDone(msg.value.leaseId));
        break;
      case "release":
        this.serialize(() => this.onRelease(msg.value.leaseId));
        break;
      default:
        break;
    }
  }

  /** Lease bookkeeping steps run one after another, in stream order. */
  private serialize(step: () => Promise<void>): void {
    this.chain = this.chain.then(step).catch((err: unknown) => this.log.warn("worker message handling failed", { err }));
  }

  private async onHello(h: { workerId: string; model: string; maxModelLen: number; engine: string }): Promise<void> {
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
    await store.registerModel(h.model, h.maxModelLen, this.modelTtlMs());
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
    this.timers.push(setInterval(() => void this.keepAlive(h.maxModelLen), keepAliveMs));
    if (this.wantsWork()) this.deps.broker.want(this);
  }

  /** The worker's own numbers, kept for the fleet view (GET /v1/fleet). */
  private onHeartbeat(hb: { running: number; waiting: number; kvBlocksUsed: bigint; kvBlocksTotal: bigint; tokensPerSecond: number }): void {
    if (!this.fleet) return;
    Object.assign(this.fleet, {
      running: hb.running,
      waiting: hb.waiting,
      kvBlocksUsed: Number(hb.kvBlocksUsed),
      kvBlocksTotal: Number(hb.kvBlocksTotal),
      tokensPerSecond: hb.tokensPerSecond,
      lastHeartbeatAtMs: Date.now(),
    });
    void this.reportFleet();
  }

  private async reportFleet(): Promise<void> {
    if (!this.fleet || this.closed) return;
    this.fleet.leases = this.leases.size;
    await this.deps.store.putWorker(this.fleet, this.modelTtlMs()).catch(() => undefined);
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
    await this.flush(lease);
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
    await this.flush(lease);
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
    for (const lease of this.leases.values()) if (lease.pending.length > 0) void this.flush(lease);
  }

  /** Persist the lease's buffered results (part, then done marks), then ack them. */
  private flush(lease: ActiveLease): Promise<void> {
    lease.flushQueued = true;
    lease.flushing = lease.flushing.then(() => this.persist(lease));
    return lease.flushing;
  }

  private async persist(lease: ActiveLease): Promise<void> {
    lease.flushQueued = false;
    if (lease.pending.length === 0) return;
    const { store, objects, metrics } = this.deps;
    const items = lease.pending.splice(0);
    const d = lease.data;
    let mark;
    const key = partKey(d.batchId, d.shard, lease.id, lease.seq++);
    try {
      await objects.put(key, encodePart(items));
      mark = await store.markLinesDone(
        d.batchId,
        d.shard,
        items.map((i) => ({ line: i.line, ok: i.ok, promptTokens: i.promptTokens, completionTokens: i.completionTokens, cachedTokens: i.cachedTokens })),
      );
    } catch (err) {
      // Not acked: keep them for the next flush.
      lease.pending.unshift(...items);
      this.log.warn("persisting results failed; will retry", { lease_id: lease.id, err });
      return;
    }
    if (mark.newlyDone < 0) {
      // The batch was finalized meanwhile: these results come too late to count.
      await objects.delete(key).catch(() => undefined);
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

  private async drop(lease: ActiveLease): Promise<void> {
    if (!this.leases.delete(lease.id)) return;
    this.deps.metrics.leasesHeld.dec();
    await this.deps.store.removeLease(lease.data.batchId, lease.id).catch(() => undefined);
  }

  /** Extend the locks of held leases, refresh their expiry and the model's registration. */
  private async keepAlive(maxModelLen: number): Promise<void> {
    const { store, config } = this.deps;
    if (this.closed) return;
    if (Date.now() - this.lastSeen > config.heartbeatIntervalMs * 3) {
      this.fail(GrpcStatus.DEADLINE_EXCEEDED, "no message from the worker within 3 heartbeat intervals");
      return;
    }
    await store.registerModel(this.model, maxModelLen, this.modelTtlMs()).catch(() => undefined);
    for (const lease of [...this.leases.values()]) {
      if (lease.finished || lease.lost) continue;
      const ok = await lease.shard.extend(config.lockDurationMs);
      if (!ok) {
        if (!lease.finished) this.loseLease(lease);
        continue;
      }
      await store.putLease(lease.data.batchId, lease.id, Date.now() + config.lockDurationMs).catch(() => undefined);
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
    void this.close(details);
  }

  /** End the session: persist what arrived, put unfinished shards back, forget it. */
  async close(reason: string, status?: { code: number; details: string }): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.deps.broker.forget(this);
    if (this.welcomed) this.deps.metrics.workersConnected.dec({ model: this.model });
    if (this.fleet) void this.deps.store.removeWorker(this.sessionId).catch(() => undefined);
    this.log.info("worker disconnected", { worker_id: this.workerId, reason, leases: this.leases.size });
    await this.chain;
    for (const lease of [...this.leases.values()]) {
      await this.flush(lease);
      if (!lease.finished && !lease.lost) {
        if (lease.stopped) await this.finish(lease);
        else await this.requeue(lease);
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
