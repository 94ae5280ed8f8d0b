import { EventEmitter } from "node:events";
import { create, CoordinatorMessageSchema } from "@batchgen/proto";
import type { Logger } from "@batchgen/core";
import { Registry } from "prom-client";
import { describe, expect, it, vi } from "vitest";
import type { ConnectStream } from "./coordinator-client.js";
import { CreditLedger } from "./credit-ledger.js";
import { InstantEngineDouble } from "./instant-engine-double.js";
import type { LineOutcome, LineRunner, PreparedLine } from "./line-runner.js";
import { WorkerMetrics } from "./worker-metrics.js";
import { WorkerSession } from "./worker-session.js";

/**
 * A session on a stream double, with a runner double whose prepare() and execute() break
 * their never-reject contract as told: what the worker does with such a bug.
 */
function brokenSession(runner: Pick<LineRunner, "prepare" | "execute" | "abort">) {
  const registry = new Registry();
  const engine = new InstantEngineDouble();
  const metrics = new WorkerMetrics(registry, () => engine.stats());
  const error = vi.fn();
  const logger: Logger = { debug: vi.fn(), info: vi.fn(), warn: vi.fn(), error, child: () => logger };
  const stream = Object.assign(new EventEmitter(), { write: vi.fn(), end: vi.fn(), cancel: vi.fn() });
  const session = new WorkerSession({
    stream: stream as unknown as ConnectStream,
    address: "test",
    hello: { workerId: "w", model: "m", engine: "e", maxConcurrency: 4, maxModelLen: 64, version: "0", loras: [] },
    runner: runner as LineRunner,
    engine,
    ledger: new CreditLedger({ target: 4 }),
    metrics,
    logger,
    onDrainRequested: () => undefined,
  });
  session.open();
  const lease = (lines: number) =>
    stream.emit(
      "data",
      create(CoordinatorMessageSchema, {
        msg: {
          case: "lease",
          value: {
            leaseId: "lease-1",
            batchId: "batch-1",
            endpoint: "/v1/chat/completions",
            totalLines: lines,
            lines: Array.from({ length: lines }, (_, i) => ({ lineIndex: BigInt(i), customId: `c${i}`, bodyJson: "{}" })),
          },
        },
      }),
    );
  const counted = async (site: string) => {
    const m = /(\d+)$/m.exec((await registry.metrics()).split("\n").find((l) => l.startsWith(`batchgen_worker_swallowed_errors_total{site="${site}"}`)) ?? "");
    return m ? Number(m[1]) : 0;
  };
  return { lease, counted, error };
}

const FAILED: LineOutcome = { kind: "error", code: "invalid_request", message: "x", promptTokens: 0 };
const PREPARED: PreparedLine = { ok: false, outcome: FAILED };

describe("WorkerSession: a rejection of a never-rejecting step", () => {
  it("from execute() is logged at error and counted per line (session.finish_line)", async () => {
    const s = brokenSession({ prepare: async () => PREPARED, execute: () => Promise.reject(new Error("execute bug")), abort: () => undefined });
    s.lease(3);
    await vi.waitFor(async () => expect(await s.counted("session.finish_line")).toBe(3));
    expect(await s.counted("session.prepare_lease")).toBe(0);
    expect(s.error).toHaveBeenCalledTimes(3);
    expect(s.error.mock.calls[0]![1]).toMatchObject({ site: "session.finish_line", leaseId: "lease-1", err: { message: "execute bug" } });
  });

  it("from prepare() is logged at error and counted once for the lease (session.prepare_lease)", async () => {
    const s = brokenSession({ prepare: () => Promise.reject(new Error("prepare bug")), execute: async () => FAILED, abort: () => undefined });
    s.lease(2);
    await vi.waitFor(async () => expect(await s.counted("session.prepare_lease")).toBe(1));
    expect(s.error).toHaveBeenCalledTimes(1);
    expect(s.error.mock.calls[0]![1]).toMatchObject({ site: "session.prepare_lease", leaseId: "lease-1", err: { message: "prepare bug" } });
  });
});
