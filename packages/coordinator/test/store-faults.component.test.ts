// Object-store faults on a real S3-compatible server (s3rver) behind a fault-injecting
// HTTP proxy; scripted gRPC workers (test doubles) do the lines. Each fault is injected
// at least 10 times: 5xx, "full" (507), stall and connection reset, during uploads,
// result writes and finalize. Uploads answer 503/507 with a JSON error and leave no
// object; results are retried with backoff and the batch completes with every line
// once; a store that stays unwritable parks the shards after a bounded number of runs.
import { readdirSync } from "node:fs";
import { S3ObjectStore } from "@batchgen/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startS3rver, type S3rverHandle } from "../../core/test/support/s3rver.js";
import { HttpFaultProxy, type HttpFault } from "../../../test/support/http-fault-proxy.js";
import { metricValue } from "../../../test/support/prometheus-text.js";
import { ScriptedFleet } from "./support/scripted-fleet.js";
import { api, chatLine, jsonl, MODEL, parseJsonl, startCluster, submitBatch, uploadFile, waitFor, waitForStatus, type Cluster } from "./support/harness.js";

const ROUNDS = 10;
let s3: S3rverHandle;
let proxy: HttpFaultProxy;
let direct: S3ObjectStore;
let cluster: Cluster | null = null;
const fleet = new ScriptedFleet();
let prefixN = 0;

beforeAll(async () => {
  s3 = await startS3rver();
  process.env.AWS_ACCESS_KEY_ID = s3.credentials.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = s3.credentials.secretAccessKey;
  proxy = await HttpFaultProxy.start(s3.endpoint);
  direct = new S3ObjectStore({ bucket: s3.bucket, endpoint: s3.endpoint, forcePathStyle: true, region: "us-east-1", credentials: s3.credentials });
});

afterAll(async () => {
  await direct?.close();
  await proxy?.close();
  await s3?.stop();
});

afterEach(async () => {
  fleet.killAll();
  proxy.rule = () => "pass";
  await cluster?.stop();
  cluster = null;
});

/** A cluster on the store behind the proxy, under a prefix of its own; requests time out after 300 ms. */
async function storeCluster(overrides: Parameters<typeof startCluster>[0] = {}): Promise<{ c: Cluster; prefix: string }> {
  const prefix = `faults-${++prefixN}-${Date.now()}`;
  const url = `s3://${s3.bucket}/${prefix}?endpoint=${encodeURIComponent(proxy.endpoint)}&region=us-east-1&forcePathStyle=true&requestTimeoutMs=300`;
  const c = await startCluster({ storeUrl: url, models: [MODEL], retryBackoffMs: 50, ...overrides });
  return { c, prefix };
}

async function keys(prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const k of direct.list(`${prefix}/`)) out.push(k);
  return out;
}

/** Open file descriptors of this process (the coordinator runs in it). */
function openFds(): number {
  return readdirSync("/proc/self/fd").length;
}

const KINDS: Exclude<HttpFault, "pass">[] = ["fail", "full", "stall", "reset"];

describe("object-store faults", () => {
  it(`uploads under each fault (${ROUNDS} times each): 503/507 with a JSON error, no object left`, async () => {
    const { c, prefix } = await storeCluster();
    // Warm the connection pools first, so the fd count compares like with like.
    expect((await uploadFile(c.url(), jsonl([chatLine("warm")]))).status).toBe(200);
    const fdsBefore = openFds();
    const took: Record<string, number> = {};
    for (const kind of KINDS) {
      proxy.rule = ({ method, path }) => (method !== "GET" && method !== "HEAD" && path.includes(`/${prefix}/files/`) ? kind : "pass");
      for (let round = 0; round < ROUNDS; round++) {
        const started = Date.now();
        const r = await uploadFile(c.url(), jsonl([chatLine(`u${round}`)]));
        const ms = Date.now() - started;
        expect(r.status, `${kind} #${round}`).toBe(kind === "full" ? 507 : 503);
        expect(r.body.error.message, kind).toMatch(kind === "full" ? /full/ : /retry/);
        expect(JSON.stringify(r.body), "no bucket name in the answer").not.toContain(s3.bucket);
        expect(ms, `${kind} #${round} took ${ms} ms`).toBeLessThan(5_000);
        took[kind] = Math.max(took[kind] ?? 0, ms);
      }
    }
    console.log(`slowest refused upload by fault (ms): ${JSON.stringify(took)}`);
    expect(proxy.injected.fail + proxy.injected.full + proxy.injected.stall + proxy.injected.reset).toBeGreaterThanOrEqual(4 * ROUNDS);
    proxy.rule = () => "pass";
    expect((await uploadFile(c.url(), jsonl([chatLine("ok")]))).status).toBe(200);
    // Only the accepted uploads are in the store; 40 failed ones left no open file or socket behind.
    expect((await keys(prefix)).filter((k) => k.startsWith(`${prefix}/files/`))).toHaveLength(2);
    await waitFor("fds back to where they were", async () => openFds() <= fdsBefore + 8, 10_000, 100);
  });

  it(`result writes failing in ${ROUNDS} windows (5xx, reset, stall): retried with backoff, every line once`, async () => {
    const { c, prefix } = await storeCluster({ shardLines: 50, resultWriteAttempts: 20, flushIntervalMs: 50 });
    // One lease at a time, ~10 ms a line: the batch outlasts the ten windows below.
    await fleet.start(c, { credit: 50, lineDelayMs: 10 });
    const fdsBefore = openFds();
    const ids = Array.from({ length: 600 }, (_, i) => `w${i}`);
    const b = await submitBatch(c.url(), ids.map((id) => chatLine(id)));
    await waitForStatus(c.url(), b.id, ["in_progress"]);
    const faults: Exclude<HttpFault, "pass">[] = ["fail", "reset", "stall"];
    for (let round = 0; round < ROUNDS; round++) {
      const kind = faults[round % faults.length]!;
      const before = proxy.injected[kind];
      proxy.rule = ({ method, path }) => (method === "PUT" && path.includes(`/${prefix}/batches/`) && path.includes("/parts/") ? kind : "pass");
      // Each window holds until a result write has really been hit.
      await waitFor(`window ${round}: a result write hit by ${kind}`, async () => proxy.injected[kind] > before, 15_000, 10);
      await new Promise((r) => setTimeout(r, 100));
      proxy.rule = () => "pass";
      await new Promise((r) => setTimeout(r, 150));
    }
    const done = await waitForStatus(c.url(), b.id, ["completed"], undefined, 60_000);
    expect(done.request_counts).toEqual({ total: 600, completed: 600, failed: 0 });
    const out = parseJsonl((await api(c.url(), "GET", `/v1/files/${done.output_file_id}/content`)).body as string);
    expect(out.map((l) => l.custom_id)).toEqual(ids);
    expect(done.error_file_id).toBeNull();
    expect(metricValue(await (await fetch(`${c.url()}/metrics`)).text(), "batchgen_coordinator_result_write_retries_total")).toBeGreaterThan(0);
    // Parts are gone once the batch is final; no upload was left half-done, no socket left open.
    expect((await keys(prefix)).filter((k) => k.includes("/parts/"))).toEqual([]);
    await waitFor("fds back to where they were", async () => openFds() <= fdsBefore + 8, 10_000, 100);
  });

  it(`finalize hitting a fault (${ROUNDS} batches, 5xx / reset / stall): retried, output complete`, async () => {
    const { c, prefix } = await storeCluster({ shardLines: 20 });
    await fleet.start(c, { credit: 100 });
    expect((await uploadFile(c.url(), jsonl([chatLine("warm")]))).status).toBe(200);
    const fdsBefore = openFds();
    const faults: HttpFault[] = ["fail", "reset", "stall"];
    for (let round = 0; round < ROUNDS; round++) {
      let left = 1; // the first write of each output file fails
      const kind = faults[round % faults.length]!;
      proxy.rule = ({ method, path }) => {
        if (method === "GET" || method === "HEAD" || !path.includes(`/${prefix}/files/file_`) || left === 0) return "pass";
        if (path.includes("uploads")) return "pass";
        left--;
        return kind;
      };
      const ids = Array.from({ length: 20 }, (_, i) => `f${round}-${i}`);
      // Upload before the rule can hit it: only the batch's output files are faulted.
      const rule = proxy.rule;
      proxy.rule = () => "pass";
      const file = await uploadFile(c.url(), jsonl(ids.map((id) => chatLine(id))));
      proxy.rule = rule;
      const batch = await api(c.url(), "POST", "/v1/batches", { json: { input_file_id: file.body.id, endpoint: "/v1/chat/completions", completion_window: "24h" } });
      const done = await waitForStatus(c.url(), batch.body.id, ["completed"], undefined, 30_000);
      expect(left, `round ${round}: the fault was injected`).toBe(0);
      const out = parseJsonl((await api(c.url(), "GET", `/v1/files/${done.output_file_id}/content`)).body as string);
      expect(out.map((l) => l.custom_id)).toEqual(ids);
      expect(done.error_file_id).toBeNull();
    }
    // Ten faulted finalizes left no upload half-done and no socket open.
    expect((await keys(prefix)).filter((k) => k.includes("/parts/"))).toEqual([]);
    await waitFor("fds back to where they were", async () => openFds() <= fdsBefore + 8, 10_000, 100);
  });

  it("a store that stays unwritable: shards are parked after a bounded number of runs, not thousands", async () => {
    const { c, prefix } = await storeCluster({ shardLines: 100, shardMaxFailures: 3, resultWriteAttempts: 3 });
    const w = await fleet.start(c, { credit: 300 });
    proxy.rule = () => "pass";
    const ids = Array.from({ length: 300 }, (_, i) => `p${i}`);
    const file = await uploadFile(c.url(), jsonl(ids.map((id) => chatLine(id))));
    // Full for results and output files (the input and its shard index are already in).
    proxy.rule = ({ method, path }) =>
      method !== "GET" && method !== "HEAD" && (path.includes("/parts/") || path.includes(`/${prefix}/files/file_`)) && !path.includes(file.body.id) ? "full" : "pass";
    const batch = await api(c.url(), "POST", "/v1/batches", { json: { input_file_id: file.body.id, endpoint: "/v1/chat/completions", completion_window: "24h" } });
    // Every line is done (parked) while nothing could be stored: finalize waits for the store.
    await waitFor("every shard parked", async () => {
      const b = await api(c.url(), "GET", `/v1/batches/${batch.body.id}`);
      return b.body.request_counts?.failed === 300 || b.body.status === "finalizing";
    }, 40_000, 100);
    const sent = w.resultsSent;
    expect(sent).toBeLessThanOrEqual(300 * 3);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(w.resultsSent, "no line runs again once its shard is parked").toBe(sent);
    const text = await (await fetch(`${c.url()}/metrics`)).text();
    expect(metricValue(text, "batchgen_coordinator_shards_parked_total", { reason: "results_not_stored" })).toBe(3);
    proxy.rule = () => "pass";
    const done = await waitForStatus(c.url(), batch.body.id, ["completed"], undefined, 40_000);
    expect(done.request_counts).toEqual({ total: 300, completed: 0, failed: 300 });
    const errors = parseJsonl((await api(c.url(), "GET", `/v1/files/${done.error_file_id}/content`)).body as string);
    expect(errors.map((l) => l.custom_id)).toEqual(ids);
    expect(new Set(errors.map((l) => l.error.code))).toEqual(new Set(["shard_parked"]));
    expect(errors[0].error.message).toMatch(/results_not_stored/);
  });
});
