// A full disk under the filesystem store, without root: the coordinator process runs
// under a file-size limit (bash `ulimit -f 8`, RLIMIT_FSIZE 8 KiB), so the kernel refuses
// any write past 8 KiB with EFBIG, as a full disk refuses writes with ENOSPC (the store
// maps both to 507 insufficient_storage). Uploads over the limit (10 times) answer 507
// with a JSON error and leave no object, no temp file and no open file; results that
// cannot be written (a scripted gRPC worker, a test double, answers with 9 KB bodies) are
// retried with backoff and their shards parked instead of re-run without end (10
// batches), and each batch still ends: its (small) error file names every line once.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterSettings, coordinatorOptions, spawnCoordinator, type ClusterSettings, type CoordinatorProcess } from "../../../test/support/e2e-cluster.js";
import { metricValue, scrape } from "../../../test/support/prometheus-text.js";
import { chatLine, jsonl, MODEL, parseJsonl, uploadFile, waitFor } from "./support/harness.js";
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
      shardLines: 5,
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

/** Open file descriptors of the coordinator process. */
function coordinatorFds(): number {
  return readdirSync(`/proc/${coordinator.process.pid}/fd`).length;
}

function storeEntries(dir: string): string[] {
  try {
    return readdirSync(join(settings.storeDir!, dir));
  } catch {
    return [];
  }
}

describe("disk full under the filesystem store (a file-size limit)", () => {
  it(`an upload past the limit (${ROUNDS} times): 507 with a JSON error, no object, no temp file, no open file`, async () => {
    const big = jsonl(Array.from({ length: 120 }, (_, i) => chatLine(`big-${i}`)));
    expect(Buffer.byteLength(big)).toBeGreaterThan(8192);
    // Warm up (pooled connections, lazy modules), then count.
    expect((await uploadFile(coordinator.httpUrl, big)).status).toBe(507);
    const fdsBefore = coordinatorFds();
    for (let round = 0; round < ROUNDS; round++) {
      const r = await uploadFile(coordinator.httpUrl, big);
      expect(r.status).toBe(507);
      expect(r.body.error).toMatchObject({ code: "insufficient_storage", message: expect.stringMatching(/full/) });
    }
    expect(storeEntries("files")).toEqual([]);
    expect(storeEntries(".batchgen-tmp")).toEqual([]);
    await waitFor("the coordinator's fds back to where they were", async () => coordinatorFds() <= fdsBefore + 3, 10_000, 100);
    // A small file still fits.
    expect((await uploadFile(coordinator.httpUrl, jsonl([chatLine("small")]))).status).toBe(200);
  });

  it(`results that cannot be written are parked after a bounded number of runs (${ROUNDS} batches), each batch ends with every line once`, async () => {
    worker = new ScriptedWorker({
      address: coordinator.grpcAddress,
      model: MODEL,
      token: "worker-secret",
      credit: 20,
      respond: ({ customId }) => ({ body: { id: customId, filler: "x".repeat(9_000) } }),
    });
    await worker.start();
    const metrics = () => scrape(`${coordinator.httpUrl}/metrics`);
    const get = async (path: string) => fetch(`${coordinator.httpUrl}${path}`, { headers: { authorization: "Bearer sk-test-a" } });
    const fdsBefore = coordinatorFds();
    for (let round = 0; round < ROUNDS; round++) {
      // Ten lines: their error file (shard_parked, ~330 bytes a line) fits under the limit.
      const ids = Array.from({ length: 10 }, (_, i) => `r${round}-${i}`);
      const file = await uploadFile(coordinator.httpUrl, jsonl(ids.map((id) => chatLine(id))));
      expect(file.status).toBe(200);
      const res = await fetch(`${coordinator.httpUrl}/v1/batches`, {
        method: "POST",
        headers: { authorization: "Bearer sk-test-a", "content-type": "application/json" },
        body: JSON.stringify({ input_file_id: file.body.id, endpoint: "/v1/chat/completions", completion_window: "24h" }),
      });
      const batch = (await res.json()) as { id: string };
      const sentBefore = worker.resultsSent;
      type Batch = { status: string; request_counts: { total: number; completed: number; failed: number }; output_file_id: string | null; error_file_id: string | null };
      const done = await waitFor(
        `batch ${round + 1} to end`,
        async () => {
          const b = (await (await get(`/v1/batches/${batch.id}`)).json()) as Batch;
          return b.status === "completed" ? b : null;
        },
        30_000,
        100,
      );
      expect(done.request_counts).toEqual({ total: 10, completed: 0, failed: 10 });
      expect(done.output_file_id).toBeNull();
      // Every line once (0 lost, 0 doubled), as a shard_parked error naming the write failure.
      const errors = parseJsonl(await (await get(`/v1/files/${done.error_file_id}/content`)).text());
      expect(errors.map((l) => l.custom_id)).toEqual(ids);
      for (const e of errors) expect(e.error).toMatchObject({ code: "shard_parked", message: expect.stringMatching(/results_not_stored/) });
      // Both shards of every batch so far, parked once each, for the writes that failed.
      expect(metricValue(await metrics(), "batchgen_coordinator_shards_parked_total")).toBe(2 * (round + 1));
      // Each shard ran at most shardMaxFailures times: 10 lines x 2.
      expect(worker.resultsSent - sentBefore).toBeLessThanOrEqual(20);
    }
    const sent = worker.resultsSent;
    await new Promise((r) => setTimeout(r, 500));
    expect(worker.resultsSent).toBe(sent);
    expect(storeEntries(".batchgen-tmp")).toEqual([]);
    await waitFor("the coordinator's fds back to where they were", async () => coordinatorFds() <= fdsBefore + 3, 10_000, 100);
  });
});
