// One full run on a real S3-compatible server (s3rver on loopback) instead of the
// filesystem store: upload, ingest, leases reading byte ranges, result parts, the
// multipart-uploaded output file and its download. Work by a scripted gRPC worker.
import { S3ObjectStore } from "@batchgen/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startS3rver, type S3rverHandle } from "../../core/test/support/s3rver.js";
import { ScriptedWorker } from "./support/scripted-worker.js";
import { api, chatLine, MODEL, parseJsonl, startCluster, submitBatch, waitForStatus, WORKER_TOKEN, type Cluster } from "./support/harness.js";

let s3: S3rverHandle;
let cluster: Cluster;
let worker: ScriptedWorker;

beforeAll(async () => {
  s3 = await startS3rver();
  process.env.AWS_ACCESS_KEY_ID = s3.credentials.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = s3.credentials.secretAccessKey;
  cluster = await startCluster({ storeUrl: s3.url("coordinator-test"), shardLines: 64 });
  worker = new ScriptedWorker({ address: cluster.grpc(), model: MODEL, token: WORKER_TOKEN, credit: 256 });
  await worker.start();
});

afterAll(async () => {
  worker?.kill();
  await cluster?.stop();
  await s3?.stop();
});

describe("S3-backed coordinator", () => {
  it("runs a batch end to end with every object in S3", async () => {
    const url = cluster.url();
    const n = 300;
    const b = await submitBatch(url, Array.from({ length: n }, (_, i) => chatLine(`s3-${i}`, { content: "é ✓ ".repeat(i % 7) })));
    const done = await waitForStatus(url, b.id, ["completed", "failed"], undefined, 30_000);
    expect(done.status).toBe("completed");
    expect(done.request_counts).toEqual({ total: n, completed: n, failed: 0 });
    const out = parseJsonl((await api(url, "GET", `/v1/files/${done.output_file_id}/content`)).body as string);
    expect(out.map((l) => l.custom_id)).toEqual(Array.from({ length: n }, (_, i) => `s3-${i}`));
    const touched = s3.requests.join("\n");
    expect(touched).toMatch(/PUT .*\/coordinator-test\/files\//);
    expect(touched).toMatch(/GET .*\/coordinator-test\/files\//);
    expect(touched).toMatch(/PUT .*\/coordinator-test\/batches\/.*\/parts\//);
    // the result parts are gone from the bucket once the batch is final
    const store = new S3ObjectStore({ bucket: s3.bucket, prefix: "coordinator-test", endpoint: s3.endpoint, forcePathStyle: true, credentials: s3.credentials });
    const left: string[] = [];
    for await (const k of store.list(`batches/${b.id}/`)) left.push(k);
    expect(left).toEqual([`batches/${b.id}/shards.json`]);
    expect(touched).toMatch(/POST .*\?delete/);
    await store.close();
  });
});
