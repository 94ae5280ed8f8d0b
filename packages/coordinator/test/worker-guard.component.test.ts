// Component tests (scripted gRPC workers as test doubles, real Redis/BullMQ) of what keeps
// the worker port safe and leases from looping: worker tokens (none or a wrong one gets
// UNAUTHENTICATED and sees nothing; several tokens for rotation), the refusal to start
// open, the credit cap from Hello, and shards parked after failing too often.
import { createLogger } from "@batchgen/core";
import { afterEach, describe, expect, it } from "vitest";
import { createCoordinator } from "../src/index.js";
import { listenAddresses } from "../../../test/support/listen-addresses.js";
import { metricValue } from "../../../test/support/prometheus-text.js";
import { ScriptedFleet } from "./support/scripted-fleet.js";
import { ScriptedWorker } from "./support/scripted-worker.js";
import { api, chatLine, MODEL, parseJsonl, startCluster, submitBatch, waitFor, waitForStatus, WORKER_TOKEN, type Cluster } from "./support/harness.js";

let cluster: Cluster | null = null;
const fleet = new ScriptedFleet();

afterEach(async () => {
  fleet.killAll();
  await cluster?.stop();
  cluster = null;
});

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `c${i}`);

async function metrics(c: Cluster): Promise<string> {
  return (await fetch(`${c.url()}/metrics`)).text();
}

describe("worker authentication", () => {
  it("refuses to start without a worker token unless --insecure-workers, and then says so in a metric", async () => {
    const base = { httpPort: 0, grpcPort: 0, redisUrl: process.env.REDIS_URL!, queuePrefix: `t${Date.now()}`, logLevel: "silent" as const };
    expect(() => createCoordinator({ ...base, workerToken: [] })).toThrow(/worker token.*--insecure-workers/);
    cluster = await startCluster({ workerToken: [], insecureWorkers: true });
    expect(metricValue(await metrics(cluster), "batchgen_coordinator_insecure_workers")).toBe(1);
    // Open: a worker with no token at all is accepted.
    await fleet.start(cluster, { token: undefined });
  });

  it("a client without the token, or with a wrong one, gets UNAUTHENTICATED and no lease; rotation accepts either token", async () => {
    cluster = await startCluster({ workerToken: ["new-token", WORKER_TOKEN], models: [MODEL] });
    const b = await submitBatch(cluster.url(), ids(20).map((id) => chatLine(id)));
    await waitForStatus(cluster.url(), b.id, ["in_progress"]);
    for (const token of [undefined, "wrong-token", `${WORKER_TOKEN}x`, ""]) {
      const rogue = fleet.track(new ScriptedWorker({ address: cluster.grpc(), model: MODEL, credit: 1000, ...(token === undefined ? {} : { token }) }));
      await expect(rogue.start()).rejects.toMatchObject({ code: 16 });
      expect(rogue.ended?.code).toBe(16);
      expect(rogue.leases).toHaveLength(0);
    }
    expect(metricValue(await metrics(cluster), "batchgen_coordinator_workers_refused_total")).toBe(4);
    expect(metricValue(await metrics(cluster), "batchgen_coordinator_insecure_workers")).toBe(0);
    // Both tokens of a rotation work.
    await fleet.start(cluster, { token: "new-token", credit: 100 });
    const done = await waitForStatus(cluster.url(), b.id, ["completed"]);
    expect(done.request_counts).toEqual({ total: 20, completed: 20, failed: 0 });
    await fleet.start(cluster, { token: WORKER_TOKEN });
  });
});

describe("credit and failing shards", () => {
  it("a worker asking for a huge credit holds only what its Hello declared; the rest of the batch runs elsewhere", async () => {
    cluster = await startCluster({ shardLines: 10 });
    const url = cluster.url();
    const greedy = await fleet.start(cluster, { maxConcurrency: 10, credit: 1_000_000, answer: false });
    const b = await submitBatch(url, ids(80).map((id) => chatLine(id)));
    await waitFor("the greedy worker's lease", async () => greedy.leases.length >= 1);
    await new Promise((r) => setTimeout(r, 500));
    greedy.credit(1_000_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(greedy.leases).toHaveLength(1);
    const honest = await fleet.start(cluster, { credit: 100 });
    await waitFor("7 of 8 shards done elsewhere", async () => honest.leases.length >= 7);
    greedy.kill(); // its shard goes back and runs on the honest worker
    const done = await waitForStatus(url, b.id, ["completed"], undefined, 20_000);
    expect(done.request_counts).toEqual({ total: 80, completed: 80, failed: 0 });
    expect(parseJsonl((await api(url, "GET", `/v1/files/${done.output_file_id}/content`)).body as string).map((l) => l.custom_id)).toEqual(ids(80));
  });

  it("shards whose workers die under them N times are parked: their lines fail with shard_parked, nothing loops", async () => {
    cluster = await startCluster({ shardLines: 10, shardMaxFailures: 3, retryBackoffMs: 50, models: [MODEL] });
    const url = cluster.url();
    const b = await submitBatch(url, ids(20).map((id) => chatLine(id)));
    // Every worker takes both shards and dies holding them (a prompt that crashes workers).
    const leased = new Set<string>();
    for (let deaths = 0; deaths < 3; deaths++) {
      const w = await fleet.start(cluster, { credit: 20, maxConcurrency: 20, answer: false });
      await waitFor("leases of both shards", async () => w.leases.length === 2, 15_000);
      for (const l of w.leases) leased.add(l.leaseId);
      w.kill();
    }
    const done = await waitForStatus(url, b.id, ["completed"], undefined, 20_000);
    expect(leased.size).toBe(6);
    expect(done.request_counts).toEqual({ total: 20, completed: 0, failed: 20 });
    const errors = parseJsonl((await api(url, "GET", `/v1/files/${done.error_file_id}/content`)).body as string);
    expect(errors.map((l) => l.custom_id)).toEqual(ids(20));
    for (const e of errors) {
      expect(e.error.code).toBe("shard_parked");
      expect(e.error.message).toMatch(/failed 3 times in a row \(worker_lost/);
    }
    const text = await metrics(cluster);
    expect(metricValue(text, "batchgen_coordinator_shards_parked_total", { reason: "worker_lost" })).toBe(2);
    expect(metricValue(text, "batchgen_coordinator_shard_failures_total", { reason: "worker_lost" })).toBe(6);
    // Parked means done: a fresh worker gets nothing of this batch.
    const late = await fleet.start(cluster, { credit: 20 });
    await new Promise((r) => setTimeout(r, 300));
    expect(late.leases).toHaveLength(0);
  });
});

describe("coordinator start", () => {
  it("listens on loopback unless told otherwise, and /metrics answers only with a metrics key once one is set", async () => {
    cluster = await startCluster({ metricsKey: "m-old, m-new" });
    const c = cluster.replicas[0]!;
    expect(listenAddresses(c.httpPort)).toEqual(["127.0.0.1"]);
    expect(listenAddresses(c.grpcPort)).toEqual(["127.0.0.1"]);
    const scrape = (authorization?: string) => fetch(`${cluster!.url()}/metrics`, authorization ? { headers: { authorization } } : {});
    for (const refused of [await scrape(), await scrape("Bearer m-wrong"), await scrape("m-new")]) {
      expect(refused.status).toBe(401);
      expect((await refused.json()).error.code).toBe("invalid_metrics_key");
    }
    for (const key of ["m-old", "m-new"]) {
      const ok = await scrape(`Bearer ${key}`);
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain("batchgen_coordinator_insecure_workers 0");
    }
  });


  it("names the problem when TLS is half configured", () => {
    const base = { redisUrl: process.env.REDIS_URL!, workerToken: "t", logLevel: "silent" as const };
    expect(() => createCoordinator({ ...base, grpcTlsCert: "/x.pem" }, { logger: createLogger("c", { level: "silent" }) })).toThrow(/go together/);
  });
});
