// The worker's control plane against a scripted coordinator (a real gRPC server on
// loopback) with the engine double: hello, credits, results, cancel, drain, reconnect.
import { createLogger } from "@batchgen/core";
import { afterEach, describe, expect, it } from "vitest";
import { CharTokenizerDouble } from "../test/support/char-tokenizer-double.js";
import { FakeCoordinator, type FakeConnection } from "../test/support/fake-coordinator.js";
import { listenAddresses } from "../../../test/support/listen-addresses.js";
import { InstantEngineDouble } from "./instant-engine-double.js";
import { createWorker } from "./worker.js";

const logger = createLogger("worker-test", { level: process.env.WORKER_TEST_LOG ?? "silent" });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(
  opts: {
    engine?: InstantEngineDouble;
    maxSeqs?: number;
    token?: string;
    metrics?: boolean;
    metricsKey?: string;
    /** The worker's coordinator setting, given the scripted coordinator's address (default: that address). */
    coordinator?: (address: string) => string;
  } = {},
) {
  const coordinator = new FakeCoordinator();
  await coordinator.start();
  const engine = opts.engine ?? new InstantEngineDouble({ maxModelLen: 256, completionTokens: 4 });
  const worker = createWorker(
    {
      coordinator: opts.coordinator ? opts.coordinator(coordinator.address) : coordinator.address,
      token: opts.token ?? "worker-secret",
      modelDir: "/models/tiny-gemma",
      maxSeqs: opts.maxSeqs ?? 4,
      metrics: opts.metrics ?? false,
      metricsPort: 0,
      ...(opts.metricsKey ? { metricsKey: opts.metricsKey } : {}),
      reconnectMinMs: 20,
      reconnectMaxMs: 100,
    },
    { engine, tokenizer: new CharTokenizerDouble(), logger },
  );
  cleanups.push(async () => {
    await worker.stop(0).catch(() => {});
    coordinator.stop();
  });
  return { coordinator, engine, worker };
}

function welcome(conn: FakeConnection): void {
  conn.send({ case: "welcome", value: { sessionId: "s1", heartbeatIntervalMs: 100, ackEvery: 16 } });
}

let leaseSeq = 0;
function lease(conn: FakeConnection, batchId: string, lines: Array<{ index: number; body: object; url?: string }>, endpoint = "/v1/completions"): string {
  const leaseId = `lease_${++leaseSeq}`;
  conn.send({
    case: "lease",
    value: {
      leaseId,
      batchId,
      shardIndex: 0,
      endpoint,
      totalLines: lines.length,
      lines: lines.map((l) => ({ lineIndex: BigInt(l.index), customId: `req-${l.index}`, bodyJson: JSON.stringify(l.body), url: l.url ?? "" })),
    },
  });
  return leaseId;
}

const lines = (from: number, n: number, body: object = { model: "tiny-gemma", prompt: "hello", max_tokens: 4 }) =>
  Array.from({ length: n }, (_, i) => ({ index: from + i, body }));

describe("worker session", () => {
  it("says hello with its model and capacity, authenticates, and asks for about 2x max_seqs lines", async () => {
    const { coordinator, worker } = await setup({ maxSeqs: 4 });
    await worker.start();
    const conn = await coordinator.untilConnections(1);
    await conn.until(() => conn.received.length >= 1);
    expect(conn.authorization).toBe("Bearer worker-secret");
    expect(conn.received[0]!.msg.case).toBe("hello");
    expect(conn.of("hello")[0]).toMatchObject({ model: "tiny-gemma", maxConcurrency: 8, maxModelLen: 256 });
    expect(conn.of("hello")[0]!.engine).toMatch(/^batchgen-engine\/\S+ cpu instant engine double$/);
    expect(conn.of("credit")).toHaveLength(0); // not before Welcome
    welcome(conn);
    await conn.until(() => conn.of("credit").length > 0);
    expect(conn.of("credit")[0]!.requests).toBe(8);
    await conn.until(() => conn.of("heartbeat").length >= 2, 3_000, "heartbeats");
    expect(worker.stats()).toMatchObject({ connected: true, sessionId: "s1", state: "running" });
  });

  it("streams one Result per line with the OpenAI body and usage, then LeaseDone", async () => {
    const { coordinator, worker } = await setup();
    await worker.start();
    const conn = await coordinator.untilConnections(1);
    welcome(conn);
    const chat = { model: "tiny-gemma", messages: [{ role: "user", content: "hey" }], max_tokens: 3 };
    const id = lease(conn, "batch_a", [
      { index: 7, body: { model: "tiny-gemma", prompt: "abc", max_tokens: 4 } },
      { index: 9, body: { model: "tiny-gemma", prompt: "x".repeat(300) } },
    ]);
    const chatLease = lease(conn, "batch_chat", [{ index: 8, body: chat }], "/v1/chat/completions");
    await conn.until(() => conn.of("leaseDone").length === 2);
    const results = conn.of("result");
    expect(results.map((r) => Number(r.lineIndex)).sort()).toEqual([7, 8, 9]);
    const byLine = new Map(results.map((r) => [Number(r.lineIndex), r]));
    const r7 = byLine.get(7)!;
    expect(r7).toMatchObject({ leaseId: id, batchId: "batch_a", customId: "req-7" });
    expect(r7.outcome.case).toBe("response");
    const body7 = JSON.parse(r7.outcome.case === "response" ? r7.outcome.value.bodyJson : "{}");
    expect(body7).toMatchObject({ object: "text_completion", model: "tiny-gemma", choices: [{ text: "abc" }], usage: { prompt_tokens: 4, completion_tokens: 4, total_tokens: 8 } });
    expect(r7.usage).toMatchObject({ promptTokens: 4, completionTokens: 4 });
    const r8 = byLine.get(8)!;
    expect(r8.outcome).toMatchObject({ case: "response" });
    expect(r8.outcome.case === "response" && JSON.parse(r8.outcome.value.bodyJson).object).toBe("chat.completion");
    const r9 = byLine.get(9)!;
    expect(r9.outcome.case).toBe("error");
    expect(r9.outcome.value).toMatchObject({ code: "context_length_exceeded" });
    expect(conn.of("leaseDone").map((d) => d.leaseId).sort()).toEqual([id, chatLease].sort());
    // Each lease's LeaseDone comes after every Result of that lease.
    for (const leaseId of [id, chatLease]) {
      const at = (m: (typeof conn.received)[number]) => (m.msg.case === "result" || m.msg.case === "leaseDone") && m.msg.value.leaseId === leaseId;
      const mine = conn.received.filter(at).map((m) => m.msg.case);
      expect(mine.at(-1)).toBe("leaseDone");
      expect(mine.filter((c) => c === "leaseDone")).toHaveLength(1);
    }
  });

  it("runs each line of a mixed lease as its own url says (chat lines in a completions lease and back)", async () => {
    const { coordinator, worker } = await setup();
    await worker.start();
    const conn = await coordinator.untilConnections(1);
    welcome(conn);
    const chat = { model: "tiny-gemma", messages: [{ role: "user", content: "hey" }], max_tokens: 3 };
    const prompt = { model: "tiny-gemma", prompt: "abc", max_tokens: 3 };
    lease(conn, "batch_mixed", [
      { index: 0, body: prompt },
      { index: 1, body: chat, url: "/v1/chat/completions" },
      { index: 2, body: prompt, url: "/v1/completions" }, // the same as the lease's: fine too
    ]);
    lease(conn, "batch_mixed2", [{ index: 3, body: prompt, url: "/v1/completions" }, { index: 4, body: chat }], "/v1/chat/completions");
    // A chat body under a completions url is a line error, not a guess.
    lease(conn, "batch_mixed3", [{ index: 5, body: chat }]);
    await conn.until(() => conn.of("leaseDone").length === 3);
    const byLine = new Map(conn.of("result").map((r) => [Number(r.lineIndex), r.outcome]));
    const object = (i: number) => {
      const o = byLine.get(i)!;
      return o.case === "response" ? JSON.parse(o.value.bodyJson).object : `error:${o.value?.code}`;
    };
    expect([0, 1, 2, 3, 4, 5].map(object)).toEqual([
      "text_completion",
      "chat.completion",
      "text_completion",
      "text_completion",
      "chat.completion",
      "error:invalid_request",
    ]);
  });

  it("keeps the engine fed across shard boundaries: the next shard comes before the worker runs dry", async () => {
    const engine = new InstantEngineDouble({ maxModelLen: 256, completionTokens: 2, delayMs: 15, maxSeqs: 4 });
    const { coordinator, worker } = await setup({ engine, maxSeqs: 4 });
    await worker.start();
    const conn = await coordinator.untilConnections(1);
    // The coordinator's rule (protocol.md): lease a whole shard while the worker's credit is > 0.
    let credit = 0;
    let next = 0;
    const heldWhenLeased: number[] = [];
    const engineBusyWhenLeased: boolean[] = [];
    const shards = 12;
    const shardLines = 10;
    const pump = () => {
      while (credit > 0 && next < shards * shardLines) {
        heldWhenLeased.push(worker.stats().heldLines);
        engineBusyWhenLeased.push(engine.stats().running > 0);
        lease(conn, "batch_b", lines(next, shardLines));
        next += shardLines;
        credit -= shardLines;
      }
    };
    conn.call.on("data", (m) => {
      if (m.msg.case === "credit") {
        credit += m.msg.value.requests;
        pump();
      }
    });
    welcome(conn);
    await conn.until(() => conn.of("leaseDone").length === shards, 15_000, "all shards");
    const indexes = conn.of("result").map((r) => Number(r.lineIndex));
    expect(indexes).toHaveLength(shards * shardLines);
    expect(new Set(indexes).size).toBe(shards * shardLines);
    // Every shard after the first was asked for while the worker still held lines.
    expect(heldWhenLeased[0]).toBe(0);
    expect(heldWhenLeased.slice(1).every((h) => h > 0)).toBe(true);
    expect(engineBusyWhenLeased.slice(1).every((busy) => busy)).toBe(true);
    // ...and never so early that it held more than its 2x max_seqs target when asking.
    expect(Math.max(...heldWhenLeased)).toBeLessThanOrEqual(8);
  });

  it("aborts the engine requests of a cancelled batch and sends no Results for them", async () => {
    const engine = new InstantEngineDouble({ maxModelLen: 256, delayMs: 60_000 });
    const { coordinator, worker } = await setup({ engine });
    await worker.start();
    const conn = await coordinator.untilConnections(1);
    welcome(conn);
    const keep = lease(conn, "batch_keep", lines(0, 2));
    const gone = lease(conn, "batch_gone", lines(0, 3));
    await conn.until(() => engine.stats().running === 5);
    conn.send({ case: "cancel", value: { batchId: "batch_gone", reason: "cancelled" } });
    await conn.until(() => conn.of("leaseDone").length === 1);
    expect(conn.of("leaseDone")[0]!.leaseId).toBe(gone);
    expect(engine.stats().running).toBe(2);
    expect(conn.of("result")).toHaveLength(0);
    expect(worker.stats().heldLines).toBe(2);
    expect(worker.stats().leases).toBe(1);
    void keep;
  });

  it("drains: no more credit, finishes what fits in the grace period, releases the rest with the done lines", async () => {
    // Lines asking for 1 token finish at once; lines asking for 2 would take a minute.
    const engine = new InstantEngineDouble({ maxModelLen: 256, delayMs: (r) => (r.maxTokens === 1 ? 5 : 60_000) });
    const { coordinator, worker } = await setup({ engine });
    await worker.start();
    const conn = await coordinator.untilConnections(1);
    welcome(conn);
    const quick = { model: "tiny-gemma", prompt: "q", max_tokens: 1 };
    const slow = { model: "tiny-gemma", prompt: "s", max_tokens: 2 };
    const mixed = lease(conn, "batch_c", [
      { index: 0, body: quick },
      { index: 1, body: slow },
      { index: 2, body: quick },
    ]);
    await conn.until(() => conn.of("result").length === 2);
    await new Promise((r) => setTimeout(r, 100)); // let any Credit sent with those Results arrive
    const credits = conn.of("credit").length;
    const started = Date.now();
    await worker.stop(300);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    await conn.until(() => conn.ended, 3_000, "stream end");
    expect(conn.of("release")).toHaveLength(1);
    const rel = conn.of("release")[0]!;
    expect(rel.leaseId).toBe(mixed);
    expect(rel.doneLineIndexes.map(Number).sort()).toEqual([0, 2]);
    expect(conn.of("leaseDone")).toHaveLength(0);
    expect(conn.of("credit")).toHaveLength(credits);
    expect(engine.stats().running).toBe(0);
    expect(worker.stats().state).toBe("stopped");
    await expect(worker.closed).resolves.toBeUndefined();
  });

  it("hands back at once a lease that arrives while it drains", async () => {
    const engine = new InstantEngineDouble({ maxModelLen: 256, delayMs: 60_000 });
    const { coordinator, worker } = await setup({ engine });
    await worker.start();
    const conn = await coordinator.untilConnections(1);
    welcome(conn);
    const held = lease(conn, "batch_g", lines(0, 1));
    await conn.until(() => engine.stats().running === 1);
    const stopping = worker.stop(500);
    const late = lease(conn, "batch_g", lines(1, 2));
    await conn.until(() => conn.of("release").length === 1);
    expect(conn.of("release")[0]).toMatchObject({ leaseId: late, doneLineIndexes: [] });
    expect(engine.stats().running).toBe(1); // the late lines never reached the engine
    await stopping;
    expect(conn.of("release").map((r) => r.leaseId)).toEqual([late, held]);
  });

  it("drains quickly when everything finishes inside the grace period", async () => {
    const engine = new InstantEngineDouble({ maxModelLen: 256, delayMs: 50 });
    const { coordinator, worker } = await setup({ engine });
    await worker.start();
    const conn = await coordinator.untilConnections(1);
    welcome(conn);
    lease(conn, "batch_d", lines(0, 3));
    await conn.until(() => engine.stats().running === 3);
    const started = Date.now();
    await worker.stop(10_000);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(conn.of("result")).toHaveLength(3);
    expect(conn.of("leaseDone")).toHaveLength(1);
    expect(conn.of("release")).toHaveLength(0);
  });

  it("drains when the coordinator sends Drain", async () => {
    const { coordinator, worker } = await setup();
    await worker.start();
    const conn = await coordinator.untilConnections(1);
    welcome(conn);
    conn.send({ case: "drain", value: { graceMs: 100 } });
    await expect(worker.closed).resolves.toBeUndefined();
    expect(worker.stats().state).toBe("stopped");
  });

  it("reconnects after losing the coordinator, dropping the old session's engine requests", async () => {
    const engine = new InstantEngineDouble({ maxModelLen: 256, delayMs: 60_000 });
    const { coordinator, worker } = await setup({ engine });
    await worker.start();
    const first = await coordinator.untilConnections(1);
    welcome(first);
    lease(first, "batch_e", lines(0, 3));
    await first.until(() => engine.stats().running === 3);
    first.call.emit("error", { code: 14, details: "replica going away" });
    const second = await coordinator.untilConnections(2);
    await second.until(() => second.of("hello").length === 1);
    expect(engine.stats().running).toBe(0);
    welcome(second);
    await second.until(() => second.of("credit").length === 1);
    expect(second.of("credit")[0]!.requests).toBe(8); // a fresh session: the full target again
    expect(worker.stats()).toMatchObject({ sessions: 2, connected: true, heldLines: 0 });
  });

  it("goes round a list of coordinator addresses, one per reconnect, skipping one that is down", async () => {
    const down = new FakeCoordinator();
    await down.start();
    const downAddress = down.address;
    down.stop(); // nothing listens there any more
    const other = new FakeCoordinator();
    await other.start();
    cleanups.push(() => other.stop());
    const { coordinator, worker } = await setup({ coordinator: (own) => `${own},${downAddress},${other.address}` });
    await worker.start();
    const first = await coordinator.untilConnections(1);
    welcome(first);
    await first.until(() => worker.stats().connected);
    expect(worker.stats().coordinator).toBe(coordinator.address);

    // This replica goes away: the next address is down, the one after it answers.
    first.call.emit("error", { code: 14, details: "replica going away" });
    const second = await other.untilConnections(1);
    await second.until(() => second.of("hello").length === 1);
    welcome(second);
    await second.until(() => worker.stats().connected);
    expect(worker.stats()).toMatchObject({ coordinator: other.address, sessions: 3 });
    expect(coordinator.connections).toHaveLength(1);

    // And round again: after the last address comes the first.
    second.call.emit("error", { code: 14, details: "replica going away" });
    const third = await coordinator.untilConnections(2);
    await third.until(() => third.of("hello").length === 1);
    expect(other.connections).toHaveLength(1);
    expect(worker.stats().sessions).toBe(4);
  });

  it("keeps trying while no coordinator is listening", async () => {
    const { coordinator, worker } = await setup();
    const port = coordinator.port;
    coordinator.stop();
    await worker.start();
    await new Promise((r) => setTimeout(r, 300));
    expect(worker.stats().sessions).toBeGreaterThan(1);
    expect(worker.stats().state).toBe("running");
    void port;
  });

  it("stops with a clear error when the coordinator refuses its token", async () => {
    const { coordinator, worker } = await setup({ token: "wrong" });
    coordinator.onConnect = (conn) => conn.call.emit("error", { code: 16, details: "bad worker token" });
    await worker.start();
    await expect(worker.closed).rejects.toThrow(/refused this worker: bad worker token/);
  });

  it("serves /metrics with token counters and engine gauges", async () => {
    const { coordinator, worker } = await setup({ metrics: true });
    await worker.start();
    const conn = await coordinator.untilConnections(1);
    welcome(conn);
    lease(conn, "batch_f", lines(0, 2));
    await conn.until(() => conn.of("leaseDone").length === 1);
    const text = await (await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`)).text();
    expect(text).toMatch(/^batchgen_worker_prompt_tokens_total 12$/m); // 2 x ("hello" + BOS)
    expect(text).toMatch(/^batchgen_worker_generation_tokens_total 8$/m);
    expect(text).toMatch(/^batchgen_worker_lines_done_total\{outcome="ok"\} 2$/m);
    expect(text).toMatch(/^batchgen_worker_requests_running 0$/m);
    expect(text).toMatch(/^batchgen_worker_kv_blocks_total /m);
    expect(text).toMatch(/^batchgen_worker_engine_step_seconds /m);
    expect(text).toMatch(/^batchgen_worker_connected 1$/m);
  });

  it("serves /metrics on loopback unless told otherwise, and only with a metrics key once one is set", async () => {
    const { worker } = await setup({ metrics: true, metricsKey: "wm-1,wm-2" });
    await worker.start();
    expect(listenAddresses(worker.metricsPort!)).toEqual(["127.0.0.1"]);
    const url = `http://127.0.0.1:${worker.metricsPort}/metrics`;
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: "Bearer wm-3" } })).status).toBe(401);
    const ok = await fetch(url, { headers: { authorization: "Bearer wm-2" } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toMatch(/^batchgen_worker_connected /m);
    // Health answers without a key (probes carry none).
    expect((await fetch(`http://127.0.0.1:${worker.metricsPort}/healthz`)).status).toBe(200);
  });
});
