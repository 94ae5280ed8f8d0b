// Component tests (unit level, with scripted gRPC workers as test doubles) of the lease
// life cycle on real Redis/BullMQ: a worker that stops mid-shard, a worker that goes
// silent, a shard whose holder vanished without a trace (the stalled checker), Release,
// cancel and expiry pushed to workers, and two replicas sharing one batch. Every case
// checks the output: each custom_id exactly once, in input order, nothing lost.
import { afterEach, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { queueNameOf } from "../src/redis/bullmq-shard-queues.js";
import { RedisJobStore } from "../src/redis/redis-job-store.js";
import { ScriptedFleet } from "./support/scripted-fleet.js";
import { ScriptedWorker, type ScriptedWorkerOptions } from "./support/scripted-worker.js";
import { api, chatLine, MODEL, parseJsonl, startCluster, submitBatch, waitFor, waitForStatus, type Cluster } from "./support/harness.js";

let cluster: Cluster | null = null;
const fleet = new ScriptedFleet();
const worker = fleet.start.bind(fleet);

afterEach(async () => {
  fleet.killAll();
  await cluster?.stop();
  cluster = null;
});

const ids = (n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => `c${i + from}`);

async function outputIds(url: string, fileId: string | null): Promise<string[]> {
  if (!fileId) return [];
  return parseJsonl((await api(url, "GET", `/v1/files/${fileId}/content`)).body as string).map((l) => l.custom_id);
}

describe("lease expiry and re-lease (component test with scripted workers)", () => {
  it("a worker killed mid-shard: its shard goes back at once, the next lease skips the acked lines", async () => {
    cluster = await startCluster({ shardLines: 100, ackEvery: 10 });
    const url = cluster.url();
    const dying = await worker(cluster, { credit: 100, maxResults: 37 });
    const b = await submitBatch(url, ids(100).map((id) => chatLine(id)));
    await waitFor("37 results acked", async () => dying.acked.size >= 30 && dying.resultsSent === 37);
    // Let the timed flush persist the rest of what was sent, then vanish.
    await new Promise((r) => setTimeout(r, 300));
    const persisted = dying.acked.size;
    expect(persisted).toBe(37);
    dying.kill();

    const next = await worker(cluster, { credit: 100 });
    const done = await waitForStatus(url, b.id, ["completed"], undefined, 20_000);
    expect(next.leases).toHaveLength(1);
    // Only the lines not yet persisted were leased again.
    expect(next.leases[0]!.lines.map((l) => Number(l.lineIndex))).toEqual(Array.from({ length: 63 }, (_, i) => i + 37));
    expect(next.leases[0]!.totalLines).toBe(100);
    expect(done.request_counts).toEqual({ total: 100, completed: 100, failed: 0 });
    expect(await outputIds(url, done.output_file_id)).toEqual(ids(100));
    expect(done.error_file_id).toBeNull();
  });

  it("a worker that goes silent (stream open, no heartbeats) loses its lease to another worker", async () => {
    cluster = await startCluster({ shardLines: 50, heartbeatIntervalMs: 500 });
    const url = cluster.url();
    const silent = await worker(cluster, { credit: 50, maxResults: 20, heartbeats: false });
    const b = await submitBatch(url, ids(50).map((id) => chatLine(id)));
    await waitFor("20 results acked", async () => silent.acked.size === 20);
    const next = await worker(cluster, { credit: 50 });
    const done = await waitForStatus(url, b.id, ["completed"], undefined, 20_000);
    expect(silent.ended?.code).toBe(4); // DEADLINE_EXCEEDED: no message within 3 heartbeat intervals
    expect(next.leases[0]!.lines).toHaveLength(30);
    expect(await outputIds(url, done.output_file_id)).toEqual(ids(50));
  });

  it("a shard whose holder vanished without releasing it is put back by the stalled checker", async () => {
    cluster = await startCluster({ shardLines: 40, lockDurationMs: 1_000, stalledIntervalMs: 300, models: [MODEL] });
    const url = cluster.url();
    const b = await submitBatch(url, ids(80).map((id) => chatLine(id)));
    await waitForStatus(url, b.id, ["in_progress"]);
    // Another "replica" takes shard 0 and dies: its lock is never extended nor released.
    const ghost = new RedisJobStore({ redisUrl: process.env.REDIS_URL!, prefix: cluster.prefix, lockDurationMs: 1_000, stalledIntervalMs: 60_000 });
    const taken = await ghost.takeShard(MODEL, "lease_ghost");
    expect(taken?.data.shard).toBe(0);
    await ghost.close();

    const w = await worker(cluster, { credit: 200 });
    const done = await waitForStatus(url, b.id, ["completed"], undefined, 20_000);
    expect(w.leases.map((l) => l.shardIndex).sort()).toEqual([0, 1]);
    expect(await outputIds(url, done.output_file_id)).toEqual(ids(80));
    const metrics = await fetch(`${url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/batchgen_coordinator_lease_expiries_total [1-9]/);
  });

  it("Release hands a lease back promptly with its sent results kept", async () => {
    cluster = await startCluster({ shardLines: 30 });
    const url = cluster.url();
    const draining = await worker(cluster, { credit: 30, maxResults: 12 });
    const b = await submitBatch(url, ids(30).map((id) => chatLine(id)));
    await waitFor("12 results sent", async () => draining.resultsSent === 12);
    const lease = draining.leases[0]!;
    draining.release(lease.leaseId, lease.lines.slice(0, 12).map((l) => Number(l.lineIndex)));
    const next = await worker(cluster, { credit: 30 });
    const done = await waitForStatus(url, b.id, ["completed"], undefined, 10_000);
    expect(next.leases[0]!.lines.map((l) => Number(l.lineIndex))).toEqual(Array.from({ length: 18 }, (_, i) => i + 12));
    expect(await outputIds(url, done.output_file_id)).toEqual(ids(30));
  });

  it("a lease lost while its worker still runs it: duplicate results are kept once", async () => {
    cluster = await startCluster({ shardLines: 40, ackEvery: 2, lockDurationMs: 1_500, stalledIntervalMs: 200 });
    const url = cluster.url();
    const tagged = (tag: string): ScriptedWorkerOptions["respond"] => ({ customId }) => ({ body: { by: tag, id: customId } });
    // Worker a is slow and ignores cancels: it sends a result for every line of its lease.
    const a = await worker(cluster, { credit: 40, lineDelayMs: 60, ignoreCancel: true, respond: tagged("a") });
    const b = await submitBatch(url, ids(40).map((id) => chatLine(id)));
    await waitFor("a few lines acked", async () => a.acked.size >= 6);
    // The lock vanishes as if the replica had stalled past it: the stalled checker puts
    // the shard back while worker a keeps sending results for it.
    const redis = new Redis(process.env.REDIS_URL!);
    await redis.del(`${cluster.prefix}:${queueNameOf(MODEL)}:${b.id}.0:lock`);
    redis.disconnect();
    const second = await worker(cluster, { credit: 40, respond: tagged("b") });
    const done = await waitForStatus(url, b.id, ["completed"], undefined, 15_000);
    await waitFor("worker a told its lease is lost", async () => a.cancels.some((c) => c.reason === "lease_lost"), 5_000);
    await waitFor("worker a sent every line", async () => a.resultsSent === 40, 10_000);
    const secondLines = second.leases.reduce((n, l) => n + l.lines.length, 0);
    // More results were sent than there are lines: some lines ran twice.
    expect(a.resultsSent + secondLines).toBeGreaterThan(40);
    const out = parseJsonl((await api(url, "GET", `/v1/files/${done.output_file_id}/content`)).body as string);
    expect(out.map((l) => l.custom_id)).toEqual(ids(40));
    expect(out.every((l) => l.response.body.id === l.custom_id && ["a", "b"].includes(l.response.body.by))).toBe(true);
    expect(done.request_counts).toEqual({ total: 40, completed: 40, failed: 0 });
  });

  it("cancel mid-run reaches the worker within seconds, keeps finished lines and marks the rest cancelled", async () => {
    cluster = await startCluster({ shardLines: 50, ackEvery: 5 });
    const url = cluster.url();
    const slow = await worker(cluster, { credit: 100, lineDelayMs: 20 });
    const b = await submitBatch(url, ids(200).map((id) => chatLine(id)));
    await waitFor("some lines acked", async () => slow.acked.size >= 20);
    const t0 = Date.now();
    const c = await api(url, "POST", `/v1/batches/${b.id}/cancel`);
    expect(c.body.status).toBe("cancelling");
    await waitFor("cancel pushed", async () => slow.cancels.length > 0, 5_000);
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(slow.cancels[0]).toMatchObject({ batchId: b.id, reason: "cancelled" });
    const done = await waitForStatus(url, b.id, ["cancelled"], undefined, 10_000);
    expect(Number.isInteger(done.cancelled_at)).toBe(true);
    const ok = await outputIds(url, done.output_file_id);
    const errs = parseJsonl((await api(url, "GET", `/v1/files/${done.error_file_id}/content`)).body as string);
    expect(ok.length).toBeGreaterThanOrEqual(20);
    expect(ok.length).toBeLessThan(200);
    expect(errs.every((e) => e.error.code === "batch_cancelled")).toBe(true);
    // every line exactly once across both files, each file in input order
    expect([...ok, ...errs.map((e) => e.custom_id)].sort()).toEqual(ids(200).sort());
    expect(ok).toEqual(ids(200).filter((id) => ok.includes(id)));
    expect(done.request_counts).toEqual({ total: 200, completed: ok.length, failed: errs.length });
    await new Promise((r) => setTimeout(r, 200));
    expect(slow.resultsSent).toBeLessThan(200);
  });

  it("a batch past its completion window expires the same way", async () => {
    cluster = await startCluster({ shardLines: 50, completionWindows: ["24h", "2s"] });
    const url = cluster.url();
    const slow = await worker(cluster, { credit: 50, lineDelayMs: 40 });
    const b = await submitBatch(url, ids(100).map((id) => chatLine(id)), { window: "2s" });
    const done = await waitForStatus(url, b.id, ["expired"], undefined, 15_000);
    expect(slow.cancels.some((c) => c.reason === "expired" && c.batchId === b.id)).toBe(true);
    expect(Number.isInteger(done.expired_at)).toBe(true);
    const ok = await outputIds(url, done.output_file_id);
    const errs = parseJsonl((await api(url, "GET", `/v1/files/${done.error_file_id}/content`)).body as string);
    expect(ok.length).toBeGreaterThan(0);
    expect(errs.length).toBeGreaterThan(0);
    expect(errs.every((e) => e.error.code === "batch_expired")).toBe(true);
    expect([...ok, ...errs.map((e) => e.custom_id)].sort()).toEqual(ids(100).sort());
  });

  it("two replicas share one batch: API on one, worker on the other, cancel crosses over", async () => {
    cluster = await startCluster({ shardLines: 25 }, 2);
    const [a, bUrl] = [cluster.url(0), cluster.url(1)];
    const w = await worker(cluster, { credit: 50, lineDelayMs: 10 }, 1);
    const first = await submitBatch(a, ids(75).map((id) => chatLine(id)));
    const done = await waitForStatus(bUrl, first.id, ["completed"], undefined, 15_000);
    expect(await outputIds(a, done.output_file_id)).toEqual(ids(75));

    const second = await submitBatch(a, ids(300, 1000).map((id) => chatLine(id)));
    await waitFor("work started", async () => w.leases.some((l) => l.batchId === second.id));
    await api(a, "POST", `/v1/batches/${second.id}/cancel`);
    await waitFor("cancel pushed by the other replica", async () => w.cancels.some((c) => c.batchId === second.id), 5_000);
    const cancelled = await waitForStatus(bUrl, second.id, ["cancelled"], undefined, 10_000);
    expect(cancelled.request_counts.total).toBe(300);
    expect(cancelled.request_counts.completed + cancelled.request_counts.failed).toBe(300);
  });

  it("refuses a worker with a wrong token", async () => {
    cluster = await startCluster();
    const w = fleet.track(new ScriptedWorker({ address: cluster.grpc(), model: MODEL, token: "wrong" }));
    await expect(w.start()).rejects.toThrow();
    expect(w.ended?.code).toBe(16); // UNAUTHENTICATED
  });
});
