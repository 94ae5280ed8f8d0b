// A scripted gRPC worker for coordinator tests: it speaks the WorkerService protocol
// (Hello, Credit, Results, LeaseDone, Release, Heartbeat) and answers every line at once
// with a made-up response, or stops where a test tells it to. A test double of a worker:
// used only where the test says so (component tests of the coordinator).
import { create, WorkerMessageSchema, workerServiceDefinition, type CoordinatorMessage, type Lease } from "@batchgen/proto";
import * as grpc from "@grpc/grpc-js";
import type { MessageInitShape } from "@bufbuild/protobuf";

type Outgoing = NonNullable<MessageInitShape<typeof WorkerMessageSchema>["msg"]>;

export interface ScriptedWorkerOptions {
  address: string;
  model: string;
  token?: string;
  maxModelLen?: number;
  /** Hello's max_concurrency (lines it says it can hold); default 4096, the coordinator's ceiling. */
  maxConcurrency?: number;
  /** Credit sent after Welcome (and again after each finished lease). */
  credit?: number;
  /** Answer leases at all (false: hold them without answering). */
  answer?: boolean;
  /** Send at most this many results, then go silent (a stuck or dying worker). */
  maxResults?: number;
  /** Delay before answering each line. */
  lineDelayMs?: number;
  /** Send Heartbeats at the interval Welcome gives (default true; false: a silent worker). */
  heartbeats?: boolean;
  /** Keep running lines after a Cancel (a worker that ignores it); default false. */
  ignoreCancel?: boolean;
  /** Prompt tokens (of 3) a line reports as served from the engine's prefix cache; default 0. */
  cachedTokens?: (lineIndex: number) => number;
  /** The response body for a line; default a chat.completion echoing the custom_id. */
  respond?: (line: { lineIndex: number; customId: string; body: Record<string, unknown> }) => { body: unknown } | { error: { code: string; message: string } };
}

const Client = grpc.makeGenericClientConstructor(workerServiceDefinition, "WorkerService");

export class ScriptedWorker {
  readonly leases: Lease[] = [];
  readonly acked = new Set<number>();
  readonly cancels: Array<{ batchId: string; leaseId: string; reason: string }> = [];
  resultsSent = 0;
  ended: { code: number; details: string } | null = null;
  private client: grpc.Client;
  private call: grpc.ClientDuplexStream<unknown, CoordinatorMessage> | null = null;
  private welcome: Promise<void>;
  private welcomed!: () => void;
  private failed!: (e: unknown) => void;
  private readonly cancelledLeases = new Set<string>();
  private stopped = false;
  private heartbeatTimer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: ScriptedWorkerOptions) {
    this.client = new Client(opts.address, grpc.credentials.createInsecure(), {
      "grpc.max_receive_message_length": -1,
    });
    this.welcome = new Promise((resolve, reject) => {
      this.welcomed = resolve;
      this.failed = reject;
    });
  }

  /** Connect and say Hello; resolves on Welcome, rejects if the stream ends first. */
  async start(): Promise<void> {
    const md = new grpc.Metadata();
    if (this.opts.token !== undefined) md.set("authorization", `Bearer ${this.opts.token}`);
    const call = (this.client as unknown as { connect(md: grpc.Metadata): grpc.ClientDuplexStream<unknown, CoordinatorMessage> }).connect(md);
    this.call = call;
    call.on("data", (m: CoordinatorMessage) => this.onMessage(m));
    call.on("error", (e: grpc.ServiceError) => {
      this.ended = { code: e.code, details: e.details };
      this.failed(e);
    });
    call.on("status", (s: grpc.StatusObject) => {
      this.ended ??= { code: s.code, details: s.details };
    });
    this.send({
      case: "hello",
      value: { workerId: `scripted-${Math.random().toString(16).slice(2)}`, model: this.opts.model, engine: "scripted", maxConcurrency: this.opts.maxConcurrency ?? 4096, maxModelLen: this.opts.maxModelLen ?? 2048, version: "test" },
    });
    await this.welcome;
  }

  send(msg: Outgoing): void {
    if (this.stopped) return;
    this.call?.write(create(WorkerMessageSchema, { msg }));
  }

  credit(n: number): void {
    this.send({ case: "credit", value: { requests: n } });
  }

  private onMessage(m: CoordinatorMessage): void {
    const msg = m.msg;
    switch (msg.case) {
      case "welcome":
        this.welcomed();
        if (this.opts.heartbeats !== false) {
          this.heartbeatTimer = setInterval(() => this.heartbeat(), msg.value.heartbeatIntervalMs);
        }
        if (this.opts.credit) this.credit(this.opts.credit);
        break;
      case "lease":
        this.leases.push(msg.value);
        if (this.opts.answer !== false) void this.answer(msg.value);
        break;
      case "ack":
        for (const i of msg.value.lineIndexes) this.acked.add(Number(i));
        break;
      case "cancel":
        this.cancels.push({ batchId: msg.value.batchId, leaseId: msg.value.leaseId, reason: msg.value.reason });
        if (this.opts.ignoreCancel) break;
        for (const l of this.leases) {
          if (l.batchId === msg.value.batchId && (msg.value.leaseId === "" || msg.value.leaseId === l.leaseId)) {
            if (!this.cancelledLeases.has(l.leaseId)) {
              this.cancelledLeases.add(l.leaseId);
              this.send({ case: "leaseDone", value: { leaseId: l.leaseId } });
            }
          }
        }
        break;
      default:
        break;
    }
  }

  private async answer(lease: Lease): Promise<void> {
    for (const line of lease.lines) {
      if (this.stopped || this.cancelledLeases.has(lease.leaseId)) return;
      if (this.opts.maxResults !== undefined && this.resultsSent >= this.opts.maxResults) return;
      if (this.opts.lineDelayMs) await new Promise((r) => setTimeout(r, this.opts.lineDelayMs));
      if (this.stopped || this.cancelledLeases.has(lease.leaseId)) return;
      const body = JSON.parse(line.bodyJson) as Record<string, unknown>;
      const out = this.opts.respond
        ? this.opts.respond({ lineIndex: Number(line.lineIndex), customId: line.customId, body })
        : { body: echoCompletion(line.customId, body) };
      this.send({
        case: "result",
        value: {
          leaseId: lease.leaseId,
          batchId: lease.batchId,
          lineIndex: line.lineIndex,
          customId: line.customId,
          outcome:
            "body" in out
              ? { case: "response", value: { statusCode: 200, bodyJson: JSON.stringify(out.body) } }
              : { case: "error", value: out.error },
          usage: { promptTokens: 3, completionTokens: 2, cachedTokens: this.opts.cachedTokens?.(Number(line.lineIndex)) ?? 0 },
          engineMs: 1,
        },
      });
      this.resultsSent++;
    }
    if (this.cancelledLeases.has(lease.leaseId)) return;
    this.send({ case: "leaseDone", value: { leaseId: lease.leaseId } });
    if (this.opts.credit) this.credit(lease.lines.length);
  }

  /** Hand a lease back unfinished (drain), naming the lines whose results were sent. */
  release(leaseId: string, doneLines: number[]): void {
    this.send({ case: "release", value: { leaseId, doneLineIndexes: doneLines.map((n) => BigInt(n)) } });
  }

  heartbeat(): void {
    this.send({ case: "heartbeat", value: { running: 0, waiting: 0, kvBlocksUsed: 0n, kvBlocksTotal: 0n, tokensPerSecond: 0 } });
  }

  /** Vanish like a killed process: the stream is cut, nothing is released. */
  kill(): void {
    this.stopped = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.call?.cancel();
    this.client.close();
  }

  /** End the stream politely. */
  close(): void {
    this.stopped = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.call?.end();
    this.client.close();
  }
}

export function echoCompletion(customId: string, body: Record<string, unknown>): unknown {
  return {
    id: `chatcmpl-${customId}`,
    object: "chat.completion",
    created: 0,
    model: body.model,
    choices: [{ index: 0, message: { role: "assistant", content: `echo:${customId}` }, finish_reason: "stop" }],
    usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
  };
}
