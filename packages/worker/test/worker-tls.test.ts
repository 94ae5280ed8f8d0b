// A job over TLS: the coordinator serves its gRPC worker port with a certificate signed
// by a throwaway CA (openssl), the real worker (CPU engine, the e2e model, loaded once
// and shared) trusts that CA file and completes a batch; a worker that trusts another
// CA never gets a session.
import { createLogger } from "@batchgen/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWorker, type Worker } from "../src/worker.js";
import { fileLines, startCoordinator, submitBatch, waitForBatch, type Harness } from "./support/coordinator-harness.js";
import { makeTestCertificates, type TestCertificates } from "../../../test/support/test-certificates.js";
import { E2E_MODEL, e2eModelDir } from "../../../test/support/e2e-model.js";
import { loadEngineDriver } from "../src/load-engine-driver.js";
import { loadWorkerConfig } from "../src/worker-config.js";
import type { EngineDriver } from "../src/engine-driver.js";

let certs: TestCertificates;
let h: Harness;
let modelDir: string;
const workers: Worker[] = [];
let engine: EngineDriver;

beforeAll(async () => {
  certs = makeTestCertificates();
  modelDir = await e2eModelDir();
  engine = await loadEngineDriver(loadWorkerConfig({ flags: { modelDir, token: "x", threads: 1, maxSeqs: 4, maxModelLen: 512, kvCacheBlocks: 256 } }));
  h = await startCoordinator({ shardLines: 4, overrides: { grpcTlsCert: certs.certFile, grpcTlsKey: certs.keyFile } });
});

afterAll(async () => {
  for (const w of workers) await w.stop(0).catch(() => undefined);
  await h?.stop();
  await engine?.close();
  certs?.cleanup();
});

function worker(caFile: string): Worker {
  const w = createWorker(
    {
      coordinator: h.grpcAddress.replace("127.0.0.1", "localhost"),
      token: h.workerToken,
      tlsCaFile: caFile,
      modelDir,
      modelName: E2E_MODEL,
      metrics: false,
      reconnectMinMs: 100,
      reconnectMaxMs: 200,
    },
    { engine, logger: createLogger("worker", { level: "silent" }) },
  );
  workers.push(w);
  return w;
}

describe("gRPC over TLS", () => {
  it("a worker trusting the coordinator's CA completes a batch; one trusting another CA never connects", async () => {
    const stranger = worker(certs.otherCaFile);
    await stranger.start();
    const trusted = worker(certs.caFile);
    await trusted.start();
    const lines = Array.from({ length: 6 }, (_, i) => ({
      custom_id: `tls-${i}`,
      method: "POST",
      url: "/v1/completions",
      body: { model: E2E_MODEL, prompt: `number ${i}`, max_tokens: 4, temperature: 0 },
    }));
    const id = await submitBatch(h, lines, "/v1/completions");
    const done = await waitForBatch(h, id, (b) => b.status === "completed", 60_000);
    expect(done.request_counts).toEqual({ total: 6, completed: 6, failed: 0 });
    expect((await fileLines<{ custom_id: string }>(h, done.output_file_id!)).map((l) => l.custom_id)).toEqual(lines.map((l) => l.custom_id));
    expect(trusted.stats().connected).toBe(true);
    expect(stranger.stats()).toMatchObject({ connected: false, sessionId: null });
    expect(stranger.stats().sessions).toBeGreaterThan(1); // it kept trying, and failed each time
  });
});
