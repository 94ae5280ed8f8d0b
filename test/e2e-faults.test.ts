// Acceptance (issue 3), fault injection: `kill -9` of a worker process mid-shard, a
// worker frozen (SIGSTOP), a worker drained by SIGTERM under load, and `kill -9` of one
// of two coordinator replicas mid-batch. Either way the batch
// completes with 0 lines lost and 0 doubled, and every completion is still the engine's
// own answer. Locks of 2 s and a 0.5 s stalled checker make recovery take seconds.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { batchApi, type BatchApi } from "./support/batch-api.js";
import { expectEveryLineOnce, expectMatchesReference, parseJsonl } from "./support/batch-output.js";
import { chatLines, toJsonl, type RequestLine } from "./support/batch-requests.js";
import {
  API_KEY,
  clusterSettings,
  coordinatorOptions,
  spawnCoordinator,
  spawnWorker,
  startInProcessCoordinator,
  type ClusterSettings,
} from "./support/e2e-cluster.js";
import { E2E_MODEL, e2eModelDir } from "./support/e2e-model.js";
import { EngineReference, type ExpectedCompletion } from "./support/engine-reference.js";
import { metricValue, scrape } from "./support/prometheus-text.js";
import { TcpProxy } from "./support/tcp-proxy.js";

const LINES = 1_000;
const FINAL = ["completed", "failed", "expired", "cancelled"];

let modelDir: string;
let lines: RequestLine[];
let expected: Map<string, ExpectedCompletion>;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  modelDir = await e2eModelDir();
  // Long enough completions that a batch runs for several seconds: time to kill something mid-way.
  lines = chatLines(LINES, { model: E2E_MODEL, prefix: "fault", minTokens: 48, maxTokens: 96 });
  const reference = await EngineReference.load(modelDir);
  try {
    expected = await reference.expected(lines);
  } finally {
    await reference.close();
  }
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Polls the batch until at least `fraction` of its lines are done (and not all); returns how many. */
async function waitUntilPartlyDone(api: BatchApi, batchId: string, fraction: number): Promise<number> {
  const batch = await api.waitUntil(
    batchId,
    `${fraction * 100}% done`,
    (b) => {
      if (FINAL.includes(b.status)) throw new Error(`batch ended (${b.status}) before the fault was injected: make it longer`);
      return b.status === "in_progress" && (b.progress?.lines_done ?? 0) >= LINES * fraction;
    },
    60_000,
  );
  return batch.progress?.lines_done ?? 0;
}

async function expectCompleteAndExact(api: BatchApi, batchId: string): Promise<void> {
  const done = await api.waitForStatus(batchId, FINAL, 90_000);
  expect(done.status, JSON.stringify(done.errors)).toBe("completed");
  expect(done.request_counts).toEqual({ total: LINES, completed: LINES, failed: 0 });
  expect(done.error_file_id).toBeNull();
  const output = parseJsonl(await api.fileContent(done.output_file_id));
  expectEveryLineOnce(lines, output);
  expect(output).toHaveLength(LINES);
  expectMatchesReference(lines, output, expected);
}

describe("kill -9 of a worker process mid-shard", () => {
  let settings: ClusterSettings;

  test("the batch completes on the other worker: 0 lines lost, 0 doubled", async () => {
    settings = clusterSettings();
    cleanups.push(() => settings.cleanup());
    const coordinator = await startInProcessCoordinator(coordinatorOptions(settings, { shardLines: 50, lockDurationMs: 2_000 }));
    cleanups.push(() => coordinator.stop());
    const victim = spawnWorker("victim", { coordinator: coordinator.grpcAddress, modelDir });
    const survivor = spawnWorker("survivor", { coordinator: coordinator.grpcAddress, modelDir });
    cleanups.push(() => victim.stop(), () => survivor.stop());
    await Promise.all([victim.connected(), survivor.connected()]);

    const api = batchApi(coordinator.httpUrl, API_KEY);
    const file = await api.upload(toJsonl(lines));
    const batch = await api.createBatch(file.id, "/v1/chat/completions");
    const doneAtKill = await waitUntilPartlyDone(api, batch.id, 0.25);
    const victimLines = metricValue(await victim.metrics(), "batchgen_worker_lines_done_total");
    victim.process.kill("SIGKILL");
    const killedAt = Date.now();
    expect(await victim.process.exited).toEqual({ code: null, signal: "SIGKILL" });

    await expectCompleteAndExact(api, batch.id);
    const metrics = await coordinator.coordinator.metrics.registry.metrics();
    // The victim held shards with lines not done: they went back to the queue...
    expect(metricValue(metrics, "batchgen_coordinator_shards_retried_total")).toBeGreaterThanOrEqual(1);
    // ...and each line was persisted once (a result that arrived twice counted once).
    expect(metricValue(metrics, "batchgen_coordinator_lines_completed_total")).toBe(LINES);
    expect(victimLines).toBeGreaterThan(0);
    console.log(
      `worker killed at ${doneAtKill}/${LINES} lines (it had finished ${victimLines}); batch complete ${((Date.now() - killedAt) / 1000).toFixed(1)} s later`,
    );
  });
});

describe("SIGTERM of a worker process under load (drain)", () => {
  let settings: ClusterSettings;

  test("it finishes what fits in its grace period, hands the rest back and exits 0; the batch completes with 0 lines lost, 0 doubled", async () => {
    settings = clusterSettings();
    cleanups.push(() => settings.cleanup());
    // Shards of 200 lines (5 in all): at SIGTERM the worker is deep in one, not finishing
    // its last lines between the check below and the signal (with 50-line shards a loaded
    // box sometimes let it end its lease first, and there was nothing to hand back).
    const coordinator = await startInProcessCoordinator(coordinatorOptions(settings, { shardLines: 200 }));
    cleanups.push(() => coordinator.stop());
    // A grace period far shorter than a shard, so the draining worker hands lines back unfinished.
    const drained = spawnWorker("drained", { coordinator: coordinator.grpcAddress, modelDir, graceMs: 50 });
    const survivor = spawnWorker("survivor", { coordinator: coordinator.grpcAddress, modelDir });
    cleanups.push(() => drained.stop(), () => survivor.stop());
    await Promise.all([drained.connected(), survivor.connected()]);

    const api = batchApi(coordinator.httpUrl, API_KEY);
    const file = await api.upload(toJsonl(lines));
    const batch = await api.createBatch(file.id, "/v1/chat/completions");
    const doneAtTerm = await waitUntilPartlyDone(api, batch.id, 0.25);
    const running = metricValue(await drained.metrics(), "batchgen_worker_requests_running");
    expect(running, "the worker is busy when told to stop").toBeGreaterThan(0);
    drained.process.kill("SIGTERM");
    const sentAt = Date.now();
    expect(await drained.process.exited).toEqual({ code: 0, signal: null });
    const drainSeconds = (Date.now() - sentAt) / 1000;
    expect(drainSeconds).toBeLessThan(10);
    const released = drained.process.lines.filter((l) => l.includes('"released lease"'));
    expect(released.length, "it handed leases back").toBeGreaterThan(0);

    await expectCompleteAndExact(api, batch.id);
    const metrics = await coordinator.coordinator.metrics.registry.metrics();
    // Handed back, not expired: its shards went back to the queue through the release, no lock ran out.
    expect(metricValue(metrics, "batchgen_coordinator_shards_retried_total")).toBeGreaterThanOrEqual(1);
    expect(metricValue(metrics, "batchgen_coordinator_lease_expiries_total")).toBe(0);
    expect(metricValue(metrics, "batchgen_coordinator_lines_completed_total")).toBe(LINES);
    console.log(`SIGTERM at ${doneAtTerm}/${LINES} lines with ${running} requests running; drained in ${drainSeconds.toFixed(1)} s`);
  });
});

describe("a worker process frozen mid-shard (SIGSTOP: its connection stays open, it goes silent)", () => {
  let settings: ClusterSettings;

  test("the coordinator gives up on it after 3 missed heartbeats and the other worker finishes the batch", async () => {
    settings = clusterSettings();
    cleanups.push(() => settings.cleanup());
    const coordinator = await startInProcessCoordinator(coordinatorOptions(settings, { shardLines: 50, lockDurationMs: 2_000 }));
    cleanups.push(() => coordinator.stop());
    const frozen = spawnWorker("frozen", { coordinator: coordinator.grpcAddress, modelDir });
    const survivor = spawnWorker("survivor", { coordinator: coordinator.grpcAddress, modelDir });
    cleanups.push(
      () => frozen.process.kill("SIGCONT"),
      () => frozen.stop(),
      () => survivor.stop(),
    );
    await Promise.all([frozen.connected(), survivor.connected()]);

    const api = batchApi(coordinator.httpUrl, API_KEY);
    const file = await api.upload(toJsonl(lines));
    const batch = await api.createBatch(file.id, "/v1/chat/completions");
    const doneAtFreeze = await waitUntilPartlyDone(api, batch.id, 0.25);
    frozen.process.kill("SIGSTOP");
    const frozenAt = Date.now();

    await expectCompleteAndExact(api, batch.id);
    const seconds = (Date.now() - frozenAt) / 1000;
    const metrics = await coordinator.coordinator.metrics.registry.metrics();
    expect(metricValue(metrics, "batchgen_coordinator_shards_retried_total")).toBeGreaterThanOrEqual(1);
    expect(metricValue(metrics, "batchgen_coordinator_lines_completed_total")).toBe(LINES);

    // Thawed, it finds its session gone and opens a new one.
    frozen.process.kill("SIGCONT");
    await frozen.connected(2, 20_000);
    console.log(`worker frozen at ${doneAtFreeze}/${LINES} lines; batch complete ${seconds.toFixed(1)} s later; it reconnected once thawed`);
  });
});

describe("kill -9 of one of two coordinator replicas mid-batch", () => {
  let settings: ClusterSettings;

  test("workers (one address behind a proxy, or a list of replicas) reconnect to the other replica, which re-leases the dead replica's shards and finishes the batch", async () => {
    settings = clusterSettings();
    cleanups.push(() => settings.cleanup());
    const options = coordinatorOptions(settings, { shardLines: 50, lockDurationMs: 2_000 });
    const [replicaA, replicaB] = await Promise.all([spawnCoordinator("replica-a", options), spawnCoordinator("replica-b", options)]);
    cleanups.push(() => replicaA.stop(), () => replicaB.stop());
    // The two ways a worker finds another replica, both starting on A: w1 dials one
    // address, as a Service would give (a proxy that prefers A); w2 is given the list of
    // replicas and dials the next one on each reconnect.
    const viaA = await TcpProxy.start([replicaA.grpcAddress, replicaB.grpcAddress]);
    cleanups.push(() => viaA.close());
    const w1 = spawnWorker("w1", { coordinator: viaA.address, modelDir });
    const w2 = spawnWorker("w2", { coordinator: `${replicaA.grpcAddress},${replicaB.grpcAddress}`, modelDir });
    cleanups.push(() => w1.stop(), () => w2.stop());
    await Promise.all([w1.connected(), w2.connected()]);
    expect(viaA.routed).toEqual([replicaA.grpcAddress]);
    expect(w2.sessionAddresses()).toEqual([replicaA.grpcAddress]);

    // Created on replica A (its ingest), followed on replica B.
    const apiA = batchApi(replicaA.httpUrl, API_KEY);
    const apiB = batchApi(replicaB.httpUrl, API_KEY);
    const file = await apiA.upload(toJsonl(lines));
    const batch = await apiA.createBatch(file.id, "/v1/chat/completions");
    const doneAtKill = await waitUntilPartlyDone(apiB, batch.id, 0.25);
    // Kill it while it holds leases (w1 is between shards only for moments).
    let leasedOnA = 0;
    for (let tries = 0; leasedOnA < 1 && tries < 200; tries++) {
      leasedOnA = metricValue(await scrape(`${replicaA.httpUrl}/metrics`), "batchgen_coordinator_leases_held");
    }
    replicaA.process.kill("SIGKILL");
    const killedAt = Date.now();
    expect(await replicaA.process.exited).toEqual({ code: null, signal: "SIGKILL" });

    // Both lost their streams and opened new sessions on replica B: w1 through the
    // proxy, w2 by dialing the next address of its list.
    await Promise.all([w1.connected(2, 20_000), w2.connected(2, 20_000)]);
    expect(viaA.routed.at(-1)).toBe(replicaB.grpcAddress);
    expect(w2.sessionAddresses()).toEqual([replicaA.grpcAddress, replicaB.grpcAddress]);

    await expectCompleteAndExact(apiB, batch.id);
    const metricsB = await scrape(`${replicaB.httpUrl}/metrics`);
    // The dead replica's leases were never released: their locks expired and B's
    // stalled checker put the shards back.
    expect(leasedOnA).toBeGreaterThanOrEqual(1);
    expect(metricValue(metricsB, "batchgen_coordinator_lease_expiries_total")).toBeGreaterThanOrEqual(1);
    console.log(
      `replica A killed at ${doneAtKill}/${LINES} lines holding ${leasedOnA} leases; batch complete ${((Date.now() - killedAt) / 1000).toFixed(1)} s later`,
    );
  });
});

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
