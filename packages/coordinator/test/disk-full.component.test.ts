// A full disk under the filesystem store, without root: the coordinator process runs
// under a file-size limit (bash `ulimit -f 8`, RLIMIT_FSIZE 4 KiB), so the kernel refuses
// any write past 4 KiB with EFBIG, as a full disk refuses writes with ENOSPC (the store
// maps both to 507 insufficient_storage). Uploads over the limit (10 times) answer 507
// with a JSON error and leave no object and no temp file; results that cannot be written
// (a scripted gRPC worker, a test double, answers with 5 KB bodies) are retried with
// backoff and their shards parked instead of re-run without end (10 batches).
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterSettings, coordinatorOptions, spawnCoordinator, type ClusterSettings, type CoordinatorProcess } from "../../../test/support/e2e-cluster.js";
import { metricValue, scrape } from "../../../test/support/prometheus-text.js";
import { chatLine, jsonl, MODEL, uploadFile, waitFor } from "./support/harness.js";
import { ScriptedWorker } from "./support/scripted-worker.js";

const ROUNDS = 10;
let settings: ClusterSettings;
let coordinator: CoordinatorProcess;
let worker: ScriptedWorker | null = null;

beforeAll(async () => {
  settings = clusterSettings();
  coordinator = await spawnCoordinator(
    "disk-full",
    coordinatorOptions(settings, {
      apiKeys: ["sk-test-a:tenant-a"],
      workerToken: "worker-secret",
      models: [MODEL],
      shardLines: 10,
      shardMaxFailures: 2,
      resultWriteAttempts: 2,
      retryBackoffMs: 50,
    }),
    {},
    "ulimit -f 8",
  );
});

afterAll(async () => {
  worker?.kill();
  await coordinator?.stop();
  settings?.cleanup();
});

function storeEntries(dir: string): string[] {
  try {
    return readdirSync(join(settings.storeDir!, dir));
  } catch {
    return [];
  }
}

describe("disk full under the filesystem store (a file-size limit)", () => {
  it(`an upload past the limit (${ROUNDS} times): 507 with a JSON error, no object, no temp file`, async () => {
    const big = jsonl(Array.from({ length: 60 }, (_, i) => chatLine(`big-${i}`)));
    expect(Buffer.byteLength(big)).toBeGreaterThan(4096);
    for (let round = 0; round < ROUNDS; round++) {
      const r = await uploadFile(coordinator.httpUrl, big);
      expect(r.status).toBe(507);
      expect(r.body.error).toMatchObject({ code: "insufficient_storage", message: expect.stringMatching(/full/) });
    }
    expect(storeEntries("files")).toEqual([]);
    expect(storeEntries(".batchgen-tmp")).toEqual([]);
    // A small file still fits.
    expect((await uploadFile(coordinator.httpUrl, jsonl([chatLine("small")]))).status).toBe(200);
  });

  it(`results that cannot be written are parked after a bounded number of runs (${ROUNDS} batches)`, async () => {
    worker = new ScriptedWorker({
      address: coordinator.grpcAddress,
      model: MODEL,
      token: "worker-secret",
      credit: 20,
      respond: ({ customId }) => ({ body: { id: customId, filler: "x".repeat(5_000) } }),
    });
    await worker.start();
    const metrics = () => scrape(`${coordinator.httpUrl}/metrics`);
    for (let round = 0; round < ROUNDS; round++) {
      const ids = Array.from({ length: 20 }, (_, i) => `r${round}-${i}`);
      const file = await uploadFile(coordinator.httpUrl, jsonl(ids.map((id) => chatLine(id))));
      expect(file.status).toBe(200);
      const res = await fetch(`${coordinator.httpUrl}/v1/batches`, {
        method: "POST",
        headers: { authorization: "Bearer sk-test-a", "content-type": "application/json" },
        body: JSON.stringify({ input_file_id: file.body.id, endpoint: "/v1/chat/completions", completion_window: "24h" }),
      });
      const batch = (await res.json()) as { id: string };
      const counts = async () =>
        ((await (await fetch(`${coordinator.httpUrl}/v1/batches/${batch.id}`, { headers: { authorization: "Bearer sk-test-a" } })).json()) as {
          request_counts: { completed: number; failed: number };
        }).request_counts;
      const sentBefore = worker.resultsSent;
      await waitFor(`every line of batch ${round + 1} parked`, async () => (await counts()).failed === 20, 30_000, 100);
      expect(await counts()).toMatchObject({ completed: 0, failed: 20 });
      // Both shards of every batch so far, parked once each, for the writes that failed.
      expect(metricValue(await metrics(), "batchgen_coordinator_shards_parked_total")).toBe(2 * (round + 1));
      // Each shard ran at most shardMaxFailures times: 20 lines x 2.
      const sent = worker.resultsSent - sentBefore;
      expect(sent).toBeLessThanOrEqual(40);
    }
    const sent = worker.resultsSent;
    await new Promise((r) => setTimeout(r, 500));
    expect(worker.resultsSent).toBe(sent);
    expect(storeEntries(".batchgen-tmp")).toEqual([]);
  });
});
