// One Connect stream with the coordinator, from Hello to its end. The session holds the
// leases it was given; when the stream is lost, the worker aborts their engine requests
// (the coordinator re-leases the shards and skips lines it already persisted) and
// opens a fresh session.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { create, WorkerMessageSchema, type CoordinatorMessage, type Lease, type Result, type WorkerMessage } from "@batchgen/proto";
import { SwallowedErrors, type Logger } from "@batchgen/core";
import type { ConnectStream } from "./coordinator-client.js";
import type { CreditLedger } from "./credit-ledger.js";
import type { EngineDriver } from "./engine-driver.js";
import { promptOrder, type LineOutcome, type LineRunner } from "./line-runner.js";
import type { WorkerMetrics } from "./worker-metrics.js";

export interface HelloInfo {
  workerId: string;
  model: string;
  engine: string;
  maxConcurrency: number;
  maxModelLen: number;
  version: string;
  /** LoRA adapters served on the model (names a line's `model` may use). */
  loras: string[];
}

export interface SessionDeps {
  stream: ConnectStream;
  /** The coordinator address the stream was opened to (for logs). */
  address: string;
  hello: HelloInfo;
  runner: LineRunner;
  engine: EngineDriver;
  ledger: CreditLedger;
  metrics: WorkerMetrics;
  logger: Logger;
  onWelcome?(): void;
  /** The coordinator asked the worker to drain (Drain message). */
  onDrainRequested(graceMs: number): void;
}

/** How a session ended: drained (asked to), lost (stream broke), or refused (auth / bad hello). */
export type SessionEnd = { kind: "drained" } | { kind: "lost"; welcomed: boolean; error?: Error } | { kind: "refused"; code: number; details: string };

interface HeldLease {
  lease: Lease;
  /** line index -> engine request id, for lines still running. */
  running: Map<number, string>;
  /** Lines whose Result was sent in this session. */
  sent: number[];
  /** Lines that ended without a Result (aborted under the session). */
  unfinished: number[];
}

const GRPC_UNAUTHENTICATED = 16;
const GRPC_INVALID_ARGUMENT = 3;
const GRPC_PERMISSION_DENIED = 7;

export class WorkerSession {
  private readonly leases = new Map<string, HeldLease>();
  private heartbeat: NodeJS.Timeout | undefined;
  private welcomed = false;
  private ended = false;
  private draining = false;
  private closing = false;
  private drainDone: (() => void) | undefined;
  private lastGenerated = 0;
  private lastBeatAt = Date.now();
  sessionId = "";
  readonly ended$: Promise<SessionEnd>;
  private resolveEnd!: (end: SessionEnd) => void;
  private readonly swallowed: SwallowedErrors;

  constructor(private readonly deps: SessionDeps) {
    this.ended$ = new Promise((resolve) => (this.resolveEnd = resolve));
    this.swallowed = new SwallowedErrors(deps.logger, deps.metrics.swallowedErrors);
  }

  /** Sends Hello and starts handling the stream; `ended$` tells how it ends. */
  open(): void {
    const { stream, hello } = this.deps;
    stream.on("data", (m: CoordinatorMessage) => this.onMessage(m));
    stream.on("error", (err: Error & { code?: number; details?: string }) => this.onStreamError(err));
    // The call is over when its status arrives (grpc-js emits "status" after any "error").
    stream.on("status", () => this.finish(this.draining ? { kind: "drained" } : { kind: "lost", welcomed: this.welcomed }));
    this.send({ case: "hello", value: hello });
  }

  get heldLines(): number {
    let n = 0;
    for (const h of this.leases.values()) n += h.running.size;
    return n;
  }

  get leaseCount(): number {
    return this.leases.size;
  }

  get isWelcomed(): boolean {
    return this.welcomed;
  }

  /**
   * Stop asking for work, let running lines finish until the deadline, then abort the
   * rest and hand their leases back (Release with the lines already sent), and close
   * the stream. Resolves once the stream is closed.
   */
  async drain(graceMs: number): Promise<void> {
    this.deps.ledger.stop();
    if (this.ended) return;
    this.draining = true;
    if (this.leases.size > 0) {
      await new Promise<void>((resolve) => {
        this.drainDone = resolve;
        const timer = setTimeout(resolve, graceMs);
        timer.unref();
      });
    }
    this.drainDone = undefined;
    for (const [leaseId, held] of [...this.leases]) {
      this.abortLines(held);
      this.send({ case: "release", value: { leaseId, doneLineIndexes: held.sent.map(BigInt) } });
      this.deps.logger.info("released lease", { leaseId, batchId: held.lease.batchId, doneLines: held.sent.length });
    }
    this.leases.clear();
    if (this.ended) return;
    // Half-close: nothing may be written after this (a write after end destroys the
    // stream before the coordinator has read the Releases).
    this.closing = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.deps.stream.end();
    // The coordinator closes its side once it has taken the Releases; do not wait forever.
    const closeTimer = setTimeout(() => this.deps.stream.cancel(), 5_000);
    closeTimer.unref();
    await this.ended$;
    clearTimeout(closeTimer);
  }

  /** The stream is gone or being abandoned: abort every engine request of this session. */
  abandon(): void {
    for (const held of this.leases.values()) this.abortLines(held);
    this.leases.clear();
    if (!this.ended) this.deps.stream.cancel();
  }

  private onMessage(m: CoordinatorMessage): void {
    switch (m.msg.case) {
      case "welcome": {
        this.welcomed = true;
        this.sessionId = m.msg.value.sessionId;
        const every = Math.max(100, m.msg.value.heartbeatIntervalMs || 5_000);
        this.heartbeat = setInterval(() => this.beat(), every);
        this.deps.logger.info("connected", { sessionId: this.sessionId, address: this.deps.address, heartbeatMs: every });
        this.deps.onWelcome?.();
        this.maybeCredit();
        return;
      }
      case "lease":
        this.onLease(m.msg.value);
        return;
      case "ack":
        return; // Results up to here are persisted; this worker keeps nothing it still needs.
      case "cancel": {
        const { batchId, leaseId, reason } = m.msg.value;
        for (const [id, held] of [...this.leases]) {
          if (held.lease.batchId !== batchId || (leaseId && leaseId !== id)) continue;
          const dropped = this.abortLines(held);
          this.leases.delete(id);
          this.send({ case: "leaseDone", value: { leaseId: id } });
          this.deps.logger.info("cancelled lease", { leaseId: id, batchId, reason, droppedLines: dropped });
        }
        this.maybeCredit();
        this.checkDrained();
        return;
      }
      case "drain":
        this.deps.onDrainRequested(m.msg.value.graceMs);
        return;
      default:
        return;
    }
  }

  private onLease(lease: Lease): void {
    const { ledger, runner, metrics, logger } = this.deps;
    if (this.draining) {
      // Leased before the coordinator saw this worker stop asking: hand it straight back.
      this.send({ case: "release", value: { leaseId: lease.leaseId, doneLineIndexes: [] } });
      return;
    }
    const held: HeldLease = { lease, running: new Map(), sent: [], unfinished: [] };
    ledger.onLease(lease.lines.length);
    this.leases.set(lease.leaseId, held);
    logger.debug("lease", { leaseId: lease.leaseId, batchId: lease.batchId, shard: lease.shardIndex, lines: lease.lines.length });
    // Every line is running from here (a cancel or release finds it); prompts are made off
    // the event loop, then the lines go to the engine in prompt order, so lines sharing a
    // prefix arrive together and share its cached blocks.
    const engineIds = lease.lines.map((line) => `${lease.leaseId}#${Number(line.lineIndex)}`);
    lease.lines.forEach((line, i) => held.running.set(Number(line.lineIndex), engineIds[i]!));
    // A mixed batch's line names its own endpoint where it differs from the lease's.
    void Promise.all(lease.lines.map((line, i) => runner.prepare(engineIds[i]!, line.url || lease.endpoint, line.bodyJson)))
      .then((prepared) => {
        for (const i of promptOrder(prepared)) {
          const line = lease.lines[i]!;
          const index = Number(line.lineIndex);
          void runner
            .execute(engineIds[i]!, prepared[i]!)
            .then((outcome) => this.onLineDone(held, index, line.customId, outcome))
            // execute() never rejects (a line's failure is its outcome); a bug past it is logged and counted.
            .catch(this.swallowed.bug("session.finish_line", { leaseId: lease.leaseId, line: index }));
        }
      })
      // prepare() never rejects either.
      .catch(this.swallowed.bug("session.prepare_lease", { leaseId: lease.leaseId }));
    metrics.leaseTaken(lease.lines.length);
    if (lease.lines.length === 0) this.completeLease(held);
  }

  private onLineDone(held: HeldLease, index: number, customId: string, outcome: LineOutcome): void {
    // A line of a lease cancelled, released or abandoned meanwhile: its result goes nowhere.
    if (this.ended || this.leases.get(held.lease.leaseId) !== held || !held.running.delete(index)) return;
    this.deps.ledger.onSettled(1);
    if (outcome.kind === "aborted") {
      // Aborted by something other than this session (the engine closing under it):
      // the line has no Result, so the lease goes back to the coordinator with Release.
      held.unfinished.push(index);
    } else {
      // Written as the message itself (not through create()): one Result a line is the hot path.
      const lease = held.lease;
      const result: Result =
        outcome.kind === "response"
          ? {
              $typeName: "batchgen.v1.Result",
              leaseId: lease.leaseId,
              batchId: lease.batchId,
              lineIndex: BigInt(index),
              customId,
              outcome: { case: "response", value: { $typeName: "batchgen.v1.Response", statusCode: 200, bodyJson: outcome.bodyJson } },
              usage: { $typeName: "batchgen.v1.Usage", promptTokens: outcome.promptTokens, completionTokens: outcome.completionTokens, cachedTokens: outcome.cachedTokens },
              engineMs: outcome.engineMs,
            }
          : {
              $typeName: "batchgen.v1.Result",
              leaseId: lease.leaseId,
              batchId: lease.batchId,
              lineIndex: BigInt(index),
              customId,
              outcome: { case: "error", value: { $typeName: "batchgen.v1.LineError", code: outcome.code, message: outcome.message } },
              usage: { $typeName: "batchgen.v1.Usage", promptTokens: outcome.promptTokens, completionTokens: 0, cachedTokens: 0 },
              engineMs: 0,
            };
      this.write({ $typeName: "batchgen.v1.WorkerMessage", msg: { case: "result", value: result } });
      held.sent.push(index);
      this.deps.metrics.lineDone(outcome);
    }
    if (held.running.size === 0) this.completeLease(held);
    this.maybeCredit();
  }

  private completeLease(held: HeldLease): void {
    const leaseId = held.lease.leaseId;
    this.leases.delete(leaseId);
    if (held.unfinished.length === 0) this.send({ case: "leaseDone", value: { leaseId } });
    else this.send({ case: "release", value: { leaseId, doneLineIndexes: held.sent.map(BigInt) } });
    this.checkDrained();
  }

  /** Aborts the lease's running lines in the engine; returns how many there were. */
  private abortLines(held: HeldLease): number {
    const n = held.running.size;
    for (const engineId of held.running.values()) {
      try {
        this.deps.runner.abort(engineId);
      } catch {
        // Already finished (its result is simply dropped) or never reached the engine.
      }
    }
    held.running.clear();
    this.deps.ledger.onSettled(n);
    return n;
  }

  private checkDrained(): void {
    if (this.draining && this.leases.size === 0) this.drainDone?.();
  }

  private maybeCredit(): void {
    if (!this.welcomed || this.ended || this.draining) return;
    const requests = this.deps.ledger.takeGrant();
    if (requests > 0) this.send({ case: "credit", value: { requests } });
  }

  private beat(): void {
    const s = this.deps.engine.stats();
    const now = Date.now();
    const seconds = Math.max(1e-3, (now - this.lastBeatAt) / 1000);
    const tokensPerSecond = Math.max(0, s.generatedTokens - this.lastGenerated) / seconds;
    this.lastGenerated = s.generatedTokens;
    this.lastBeatAt = now;
    this.send({
      case: "heartbeat",
      value: {
        running: s.running,
        waiting: s.waiting,
        kvBlocksUsed: BigInt(s.kvBlocksUsed),
        kvBlocksTotal: BigInt(s.kvBlocksTotal),
        tokensPerSecond,
        lorasLoaded: s.lorasResident,
      },
    });
    this.maybeCredit(); // a safety net: a lost Credit must not starve the worker
  }

  private onStreamError(err: Error & { code?: number; details?: string }): void {
    const code = err.code ?? -1;
    const refused = code === GRPC_UNAUTHENTICATED || code === GRPC_PERMISSION_DENIED || (code === GRPC_INVALID_ARGUMENT && !this.welcomed);
    if (refused) this.finish({ kind: "refused", code, details: err.details ?? err.message });
    else this.finish(this.draining ? { kind: "drained" } : { kind: "lost", welcomed: this.welcomed, error: err });
  }

  private finish(end: SessionEnd): void {
    if (this.ended) return;
    this.ended = true;
    this.deps.logger.debug("session ended", { kind: end.kind, error: "error" in end ? end.error?.message : undefined });
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const held of this.leases.values()) this.abortLines(held);
    this.leases.clear();
    this.drainDone?.();
    this.resolveEnd(end);
  }

  private send(msg: MessageInitShape<typeof WorkerMessageSchema>["msg"]): void {
    this.write(create(WorkerMessageSchema, { msg }));
  }

  private write(message: WorkerMessage): void {
    if (this.ended || this.closing) return;
    try {
      this.deps.stream.write(message);
    } catch (err) {
      this.deps.logger.warn("write to coordinator failed", { error: err instanceof Error ? err.message : String(err) });
    }
  }
}
