// Redis faults against a coordinator on a redis-server of the test's own (AOF), with a
// fault-injecting TCP proxy in front of it; scripted gRPC workers (test doubles) where
// a batch runs. Each fault is injected 10 times: Redis stopped, Redis stalled (the
// proxy forwards nothing), Redis restarted empty. Every API call answers within 2 s
// (503 while Redis is away), /healthz stays 200 and /readyz says what is wrong; a batch
// run through the faults loses and doubles no line; no object or temp file is left.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FaultProxy } from "../../../test/support/fault-proxy.js";
import { metricValue } from "../../../test/support/prometheus-text.js";
import { RedisProcess } from "../../../test/support/redis-process.js";
import { ScriptedFleet } from "./support/scripted-fleet.js";
import { api, chatLine, jsonl, MODEL, parseJsonl, startCluster, submitBatch, uploadFile, waitFor, waitForStatus, type Cluster } from "./support/harness.js";

const ROUNDS = 10;
let redis: RedisProcess;
let proxy: FaultProxy;
let cluster: Cluster | null = null;
const fleet = new ScriptedFleet();

beforeAll(async () => {
  redis = await RedisProcess.start();
  proxy = await FaultProxy.start({ port: redis.port });
});

afterAll(async () => {
  await proxy?.close();
  await redis?.close();
});

afterEach(async () => {
  fleet.killAll();
  proxy.set("pass");
  await redis.startAgain();
  await cluster?.stop();
  cluster = null;
});

const redisUrl = () => `redis://127.0.0.1:${proxy.port}`;

/** Status and time of one request; a request that hangs fails the test at 5 s. */
async function timed(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; ms: number }> {
  const started = Date.now();
  const res = await fetch(url + path, {
    method,
    signal: AbortSignal.timeout(5_000),
    headers: { authorization: "Bearer sk-test-a", ...(body ? { "content-type": "application/json" } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  await res.text();
  return { status: res.status, ms: Date.now() - started };
}

async function everyCallFailsFast(c: Cluster, fileId: string, batchId: string): Promise<void> {
  const url = c.url();
  const calls = await Promise.all([
    timed(url, "GET", "/v1/batches"),
    timed(url, "GET", `/v1/batches/${batchId}`),
    timed(url, "GET", `/v1/files/${fileId}`),
    timed(url, "POST", "/v1/batches", { input_file_id: fileId, endpoint: "/v1/chat/completions", completion_window: "24h" }),
    timed(url, "POST", `/v1/batches/${batchId}/cancel`),
    (async () => {
      const started = Date.now();
      const r = await uploadFile(url, jsonl([chatLine("x")]));
      return { status: r.status, ms: Date.now() - started };
    })(),
    timed(url, "GET", "/readyz"),
  ]);
  for (const [i, call] of calls.entries()) {
    expect(call.status, `call ${i}`).toBe(503);
    expect(call.ms, `call ${i} took ${call.ms} ms`).toBeLessThan(2_000);
  }
  expect((await timed(url, "GET", "/healthz")).status).toBe(200);
}

async function untilReady(c: Cluster): Promise<void> {
  await waitFor("/readyz 200", async () => (await timed(c.url(), "GET", "/readyz")).status === 200, 10_000, 50);
}

/** Objects under files/ and temp files of the store (a failed upload must leave neither). */
function storeFiles(c: Cluster): { files: number; temp: number } {
  const list = (dir: string) => {
    try {
      return readdirSync(join(c.storeDir, dir));
    } catch {
      return [];
    }
  };
  return { files: list("files").length, temp: list(".batchgen-tmp").length };
}

describe("Redis faults", () => {
  it(`Redis stopped (${ROUNDS} times): every API call answers 503 within 2 s; all is well once it is back`, async () => {
    cluster = await startCluster({ redisUrl: redisUrl(), models: [MODEL] });
    const file = await uploadFile(cluster.url(), jsonl([chatLine("a")]));
    const batch = await api(cluster.url(), "POST", "/v1/batches", {
      json: { input_file_id: file.body.id, endpoint: "/v1/chat/completions", completion_window: "24h" },
    });
    const before = storeFiles(cluster);
    const fdsBefore = readdirSync("/proc/self/fd").length;
    for (let round = 0; round < ROUNDS; round++) {
      await redis.stop();
      await everyCallFailsFast(cluster, file.body.id, batch.body.id);
      await redis.startAgain();
      await untilReady(cluster);
      expect((await api(cluster.url(), "GET", `/v1/batches/${batch.body.id}`)).status).toBe(200);
    }
    // Uploads refused while Redis was away left no object and no temp file behind, and
    // 70 failed requests no open file or socket (a reconnected client may hold a few).
    expect(storeFiles(cluster)).toEqual(before);
    await waitFor("fds back to where they were", async () => readdirSync("/proc/self/fd").length <= fdsBefore + 8, 10_000, 100);
  });

  it(`Redis stalled (${ROUNDS} times): every API call answers 503 within 2 s`, async () => {
    cluster = await startCluster({ redisUrl: redisUrl(), models: [MODEL], redisCommandTimeoutMs: 800 });
    const file = await uploadFile(cluster.url(), jsonl([chatLine("a")]));
    const batch = await api(cluster.url(), "POST", "/v1/batches", {
      json: { input_file_id: file.body.id, endpoint: "/v1/chat/completions", completion_window: "24h" },
    });
    const before = storeFiles(cluster);
    const fdsBefore = readdirSync("/proc/self/fd").length;
    for (let round = 0; round < ROUNDS; round++) {
      proxy.set("stall");
      await everyCallFailsFast(cluster, file.body.id, batch.body.id);
      proxy.set("pass");
      await untilReady(cluster);
    }
    expect(storeFiles(cluster)).toEqual(before);
    await waitFor("fds back to where they were", async () => readdirSync("/proc/self/fd").length <= fdsBefore + 8, 10_000, 100);
  });

  it(`a batch run through ${ROUNDS} Redis kill -9s and ${ROUNDS} connection resets: every line once, none lost`, async () => {
    cluster = await startCluster({ redisUrl: redisUrl(), shardLines: 40, retryBackoffMs: 50, lockDurationMs: 3_000 });
    await fleet.start(cluster, { credit: 80, lineDelayMs: 10 });
    const ids = Array.from({ length: 400 }, (_, i) => `r${i}`);
    const b = await submitBatch(cluster.url(), ids.map((id) => chatLine(id)));
    for (let round = 0; round < ROUNDS; round++) {
      await new Promise((r) => setTimeout(r, 150));
      // Each kill lands mid-batch (right after a restart Redis may still be loading: 503).
      const now = await api(cluster.url(), "GET", `/v1/batches/${b.id}`);
      if (now.status === 200) expect(now.body.status, `before kill ${round + 1}`).toBe("in_progress");
      // kill -9 loses nothing: AOF with appendfsync always (as k8s/ and `batchgen up` run it, fsync aside).
      await redis.stop("SIGKILL");
      await new Promise((r) => setTimeout(r, 250));
      await redis.startAgain();
      await new Promise((r) => setTimeout(r, 150));
      proxy.reset();
    }
    const done = await waitForStatus(cluster.url(), b.id, ["completed"], undefined, 60_000);
    expect(done.request_counts.total).toBe(400);
    expect(storeFiles(cluster).temp).toBe(0);
    const out = parseJsonl((await api(cluster.url(), "GET", `/v1/files/${done.output_file_id}/content`)).body as string);
    const errors = done.error_file_id ? parseJsonl((await api(cluster.url(), "GET", `/v1/files/${done.error_file_id}/content`)).body as string) : [];
    // Each line exactly once across output and errors, in input order within each file.
    expect([...out, ...errors].map((l) => l.custom_id).sort()).toEqual([...ids].sort());
    expect(out.map((l) => l.custom_id)).toEqual(ids.filter((id) => out.some((l) => l.custom_id === id)));
    expect(done.request_counts.completed + done.request_counts.failed).toBe(400);
  });

  it(`Redis restarted empty (${ROUNDS} times): /readyz fails loudly, a new replica refuses to start unless told to accept the reset`, async () => {
    cluster = await startCluster({ redisUrl: redisUrl() });
    let current = 0;
    const fdsBefore = readdirSync("/proc/self/fd").length;
    for (let round = 0; round < ROUNDS; round++) {
      // A file of this epoch: its record goes with Redis, its object stays in storage.
      const file = await uploadFile(cluster.url(current), jsonl([chatLine(`e${round}`)]));
      expect(file.status).toBe(200);
      await redis.restartEmpty();
      // Once the client has reconnected, readiness names the lost state.
      const text = await waitFor("/readyz to name the lost state", async () => {
        const ready = await fetch(`${cluster!.url(current)}/readyz`);
        const body = await ready.text();
        return ready.status === 503 && /came back without this coordinator's state/.test(body) ? body : null;
      }, 10_000, 50);
      expect(text).toMatch(/epoch key missing/);
      expect(metricValue(await (await fetch(`${cluster.url(current)}/metrics`)).text(), "batchgen_coordinator_redis_epoch_lost")).toBe(1);
      await expect(cluster.addReplica()).rejects.toThrow(/Redis lost its state.*--accept-redis-reset/);
      await cluster.addReplica({ acceptRedisReset: true });
      // The old epoch's replica goes (an operator replaces it); the new one serves.
      await cluster.replicas[current]!.stop();
      current = cluster.replicas.length - 1;
      await untilReadyAt(cluster, current);
      expect(existsSync(join(cluster.storeDir, "files", file.body.id)), "the object is not deleted with the lost record").toBe(true);
    }
    expect(storeFiles(cluster)).toEqual({ files: ROUNDS, temp: 0 });
    // One replica runs, as at the start: ten refused starts and ten replaced replicas left nothing open.
    await waitFor("fds back to where they were", async () => readdirSync("/proc/self/fd").length <= fdsBefore + 8, 10_000, 100);
  });
});

describe("Redis AUTH", () => {
  it("a coordinator with the password in its Redis URL works; a wrong one fails at start naming Redis", async () => {
    const locked = await RedisProcess.start(["--requirepass", "s3cret-pass"]);
    try {
      await expect(startCluster({ redisUrl: `redis://:wrong@127.0.0.1:${locked.port}` })).rejects.toThrow(/Redis|WRONGPASS|NOAUTH/);
      cluster = await startCluster({ redisUrl: `redis://:s3cret-pass@127.0.0.1:${locked.port}`, models: [MODEL] });
      const file = await uploadFile(cluster.url(), jsonl([chatLine("a")]));
      expect(file.status).toBe(200);
      expect((await fetch(`${cluster.url()}/readyz`)).status).toBe(200);
    } finally {
      await cluster?.stop();
      cluster = null;
      await locked.close();
    }
  });
});

async function untilReadyAt(c: Cluster, i: number): Promise<void> {
  await waitFor(`replica ${i} ready`, async () => (await fetch(`${c.url(i)}/readyz`)).status === 200, 10_000, 50);
}
