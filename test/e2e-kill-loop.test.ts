// Fault table (docs/reliability.md): kill -9 of each process, 10 times in one batch.
// Workers: two worker processes (real CPU engine, the e2e model); ten times a fresh one
// connects and the older one is SIGKILLed mid-batch (while it holds leases).
// Coordinators: eleven replica processes behind a TCP proxy; ten times the one the
// workers are on is SIGKILLed and they reconnect to the next. Each batch completes with every
// line exactly once, each generated in full (ignore_eos: every line runs its max_tokens,
// so the batch lasts through the kills): 0 lost, 0 doubled.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { batchApi, type BatchApi } from "./support/batch-api.js";
import { expectEveryLineOnce, parseJsonl } from "./support/batch-output.js";
import { chatLines, toJsonl, type RequestLine } from "./support/batch-requests.js";
import {
  API_KEY,
  clusterSettings,
  coordinatorOptions,
  spawnCoordinator,
  spawnWorker,
  startInProcessCoordinator,
  type CoordinatorProcess,
  type WorkerProcess,
} from "./support/e2e-cluster.js";
import { E2E_MODEL, e2eModelDir } from "./support/e2e-model.js";
import { metricValue, scrape } from "./support/prometheus-text.js";
import { TcpProxy } from "./support/tcp-proxy.js";

const KILLS = 10;
/** Lines of each batch: long enough to last through ten kills (a worker start takes seconds). */
const LINES = { workers: 9_000, coordinators: 300 } as const;
const FINAL = ["completed", "failed", "expired", "cancelled"];

let modelDir: string;
let lines: { workers: RequestLine[]; coordinators: RequestLine[] };
const cleanups: Array<() => Promise<void> | void> = [];
let killsSoFar = 0;

beforeAll(async () => {
  modelDir = await e2eModelDir();
  const make = (n: number) =>
    chatLines(n, { model: E2E_MODEL, prefix: "kill", minTokens: 64, maxTokens: 128 }).map((l) => ({ ...l, body: { ...l.body, ignore_eos: true } }));
  lines = { workers: make(LINES.workers), coordinators: make(LINES.coordinators) };
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function linesDone(api: BatchApi, id: string): Promise<number> {
  const b = await api.getBatch(id).catch(() => null);
  if (b && FINAL.includes(b.status)) throw new Error(`batch ended (${b.status}) before ${KILLS} kills (at ${killsSoFar}): make it longer`);
  return b?.progress?.lines_done ?? 0;
}

async function untilProgress(api: BatchApi, id: string, beyond: number): Promise<number> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const done = await linesDone(api, id);
    if (done > beyond) return done;
    if (Date.now() > deadline) throw new Error(`no progress beyond ${beyond} lines in 60 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function expectExact(api: BatchApi, id: string, lines: RequestLine[]): Promise<void> {
  const done = await api.waitForStatus(id, FINAL, 120_000);
  expect(done.status, JSON.stringify(done.errors)).toBe("completed");
  expect(done.request_counts).toEqual({ total: lines.length, completed: lines.length, failed: 0 });
  const output = parseJsonl(await api.fileContent(done.output_file_id));
  expectEveryLineOnce(lines, output);
  // Each line ran to its own max_tokens: a whole answer, not a piece of one.
  for (const [i, l] of output.entries()) {
    const want = (lines[i]!.body.max_completion_tokens ?? lines[i]!.body.max_tokens) as number;
    expect(l.response?.body?.usage?.completion_tokens, l.custom_id).toBe(want);
  }
}

describe(`kill -9, ${KILLS} times in one batch`, () => {
  test("of worker processes: 0 lines lost, 0 doubled", async () => {
    const settings = clusterSettings();
    cleanups.push(() => settings.cleanup());
    const c = await startInProcessCoordinator(coordinatorOptions(settings, { shardLines: 25, lockDurationMs: 2_000, models: [E2E_MODEL] }));
    cleanups.push(() => c.stop());
    // Two workers at a time: ten times a fresh one connects, then the older one is killed.
    let n = 0;
    const start = (): WorkerProcess => {
      const w = spawnWorker(`w${n++}`, { coordinator: c.grpcAddress, modelDir, maxSeqs: 2 });
      cleanups.push(() => w.stop());
      return w;
    };
    const workers = [start(), start()];
    await Promise.all(workers.map((w) => w.connected(1, 60_000)));
    const api = batchApi(c.httpUrl, API_KEY);
    const batch = await api.createBatch((await api.upload(toJsonl(lines.workers))).id, "/v1/chat/completions");
    killsSoFar = 0;
    let done = 0;
    for (let kill = 0; kill < KILLS; kill++, killsSoFar++) {
      done = await untilProgress(api, batch.id, done);
      const fresh = start();
      await fresh.connected(1, 60_000);
      const victim = workers.shift()!;
      workers.push(fresh);
      await linesDone(api, batch.id); // still running: the kill lands mid-batch
      victim.process.kill("SIGKILL");
      expect(await victim.process.exited).toEqual({ code: null, signal: "SIGKILL" });
    }
    await expectExact(api, batch.id, lines.workers);
    const text = await c.coordinator.metrics.registry.metrics();
    expect(metricValue(text, "batchgen_coordinator_lines_completed_total")).toBe(LINES.workers);
    expect(metricValue(text, "batchgen_coordinator_shard_failures_total", { reason: "worker_lost" })).toBeGreaterThanOrEqual(KILLS / 2);
    expect(metricValue(text, "batchgen_coordinator_shards_parked_total")).toBe(0);
  });

  test("of coordinator replica processes: 0 lines lost, 0 doubled", async () => {
    const settings = clusterSettings();
    cleanups.push(() => settings.cleanup());
    const options = coordinatorOptions(settings, { shardLines: 25, lockDurationMs: 2_000, models: [E2E_MODEL] });
    // One after another: eleven Node processes starting at once on a loaded 2-core box
    // would each take longer than the start timeout.
    const replicas: CoordinatorProcess[] = [];
    for (let i = 0; i <= KILLS; i++) {
      const r = await spawnCoordinator(`c${i}`, options);
      cleanups.push(() => r.stop());
      replicas.push(r);
    }
    // Workers dial one address; the proxy sends each new connection to the first live replica.
    const proxy = await TcpProxy.start(replicas.map((r) => r.grpcAddress));
    cleanups.push(() => proxy.close());
    const workers = [0, 1].map((i) => {
      const w = spawnWorker(`cw${i}`, { coordinator: proxy.address, modelDir, maxSeqs: 2 });
      cleanups.push(() => w.stop());
      return w;
    });
    await Promise.all(workers.map((w) => w.connected()));
    let api = batchApi(replicas[KILLS]!.httpUrl, API_KEY);
    const batch = await api.createBatch((await api.upload(toJsonl(lines.coordinators))).id, "/v1/chat/completions");
    let done = 0;
    killsSoFar = 0;
    for (let kill = 0; kill < KILLS; kill++, killsSoFar++) {
      done = await untilProgress(api, batch.id, done);
      // The replica the workers are on: the first live one of the proxy's list.
      const victim = replicas[kill]!;
      victim.process.kill("SIGKILL");
      expect(await victim.process.exited).toEqual({ code: null, signal: "SIGKILL" });
      api = batchApi(replicas[kill + 1]!.httpUrl, API_KEY);
      // Both workers lost their stream and reconnected to the next replica.
      await Promise.all(workers.map((w) => w.connected(kill + 2, 20_000)));
    }
    await expectExact(api, batch.id, lines.coordinators);
    const text = await scrape(`${replicas[KILLS]!.httpUrl}/metrics`);
    expect(metricValue(text, "batchgen_coordinator_shards_parked_total")).toBe(0);
  });
});
