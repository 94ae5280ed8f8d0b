// Redis over TLS with AUTH: a redis-server of the test's own that serves TLS only (no
// plaintext port) and wants a password, its certificate signed by a throwaway CA made
// with openssl. A coordinator on rediss://:password@ that trusts the CA
// (--redis-tls-ca-file) runs a batch with a scripted worker (a test double): its own
// connection, the pub/sub subscriber and BullMQ's connections all speak TLS. A wrong
// password and a CA that did not sign Redis's certificate (or none) each fail at start
// within seconds with one clear line and no stack trace.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@batchgen/core";
import { NodeProcess } from "../../../test/support/node-process.js";
import { RedisProcess } from "../../../test/support/redis-process.js";
import { makeTestCertificates, type TestCertificates } from "../../../test/support/test-certificates.js";
import { createCoordinator } from "../src/index.js";
import { ScriptedFleet } from "./support/scripted-fleet.js";
import { api, chatLine, parseJsonl, startCluster, submitBatch, waitForStatus, type Cluster } from "./support/harness.js";

const MAIN = fileURLToPath(new URL("../dist/main.js", import.meta.url));
const PASSWORD = "tls-s3cret";

let certs: TestCertificates;
let redis: RedisProcess;
let cluster: Cluster | null = null;
const fleet = new ScriptedFleet();

beforeAll(async () => {
  certs = makeTestCertificates();
  redis = await RedisProcess.start(["--requirepass", PASSWORD], { certFile: certs.certFile, keyFile: certs.keyFile, caFile: certs.caFile });
});

afterAll(async () => {
  await redis?.close();
  certs?.cleanup();
});

afterEach(async () => {
  fleet.killAll();
  await cluster?.stop();
  cluster = null;
});

const tlsUrl = (password = PASSWORD) => `rediss://:${password}@127.0.0.1:${redis.port}`;

/** Starts a coordinator on `redisUrl` and expects it to fail: the error's message and how long it took. */
async function failedStart(redisUrl: string, redisTlsCaFile?: string): Promise<{ message: string; ms: number }> {
  const started = Date.now();
  const err = await startCluster({ redisUrl, ...(redisTlsCaFile ? { redisTlsCaFile } : {}) }).then(
    () => expect.fail("the coordinator started"),
    (e: unknown) => e as Error,
  );
  return { message: err.message, ms: Date.now() - started };
}

describe("Redis over TLS (rediss://) with AUTH", () => {
  // A connection without the CA would hang the lease path rather than fail: the timeout bounds it.
  it("a batch completes on rediss://:password@ with the CA from --redis-tls-ca-file; /readyz is ready", { timeout: 20_000 }, async () => {
    cluster = await startCluster({ redisUrl: tlsUrl(), redisTlsCaFile: certs.caFile, shardLines: 2 });
    expect((await fetch(`${cluster.url()}/readyz`)).status).toBe(200);
    await fleet.start(cluster, { credit: 10 });
    const ids = ["a", "b", "c", "d", "e"];
    const batch = await submitBatch(cluster.url(), ids.map((id) => chatLine(id)));
    const done = await waitForStatus(cluster.url(), batch.id, ["completed"], undefined, 15_000);
    expect(done.request_counts).toMatchObject({ total: 5, completed: 5, failed: 0 });
    const out = parseJsonl((await api(cluster.url(), "GET", `/v1/files/${done.output_file_id}/content`)).body as string);
    // Three shards, each leased through BullMQ's queue of the model: its connections speak TLS too.
    expect(out.map((l) => l.custom_id)).toEqual(ids);
  });

  it("a wrong password fails at start within seconds, naming the refused credentials", async () => {
    const { message, ms } = await failedStart(tlsUrl("wrong"), certs.caFile);
    expect(message).toMatch(/Redis refused the credentials in the Redis URL: WRONGPASS/);
    expect(ms).toBeLessThan(3_000);
  });

  it("a CA that did not sign Redis's certificate, or none (the system's store), fails at start within seconds", async () => {
    for (const ca of [certs.otherCaFile, undefined]) {
      const { message, ms } = await failedStart(tlsUrl(), ca);
      expect(message, String(ca)).toMatch(/Redis's TLS certificate is not trusted \(.+\): give the CA that signed it with --redis-tls-ca-file/);
      expect(ms, String(ca)).toBeLessThan(3_000);
    }
  });

  it("the process prints one line and exits 1 on an untrusted certificate (no stack trace)", async () => {
    const started = Date.now();
    const store = mkdtempSync(join(tmpdir(), "bg-redis-tls-"));
    const p = new NodeProcess("coordinator", [MAIN, "--http-port", "0", "--grpc-port", "0", "--worker-token", "t", "--store-url", store,
      "--redis-url", tlsUrl(), "--redis-tls-ca-file", certs.otherCaFile]);
    const { code } = await p.exited;
    expect(code).toBe(1);
    expect(Date.now() - started).toBeLessThan(5_000);
    const errors = p.lines.filter((l) => l.startsWith("batchgen-coordinator:"));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^batchgen-coordinator: Redis's TLS certificate is not trusted/);
    expect(p.lines.join("\n")).not.toMatch(/^\s+at /m);
    rmSync(store, { recursive: true, force: true });
  });

  it("refuses --redis-tls-ca-file with a redis:// URL, and a CA file it cannot read, before connecting", () => {
    const base = { redisUrl: `redis://127.0.0.1:${redis.port}`, workerToken: "t", logLevel: "silent" as const };
    const logger = createLogger("c", { level: "silent" });
    expect(() => createCoordinator({ ...base, redisTlsCaFile: certs.caFile }, { logger })).toThrow(/--redis-tls-ca-file needs a rediss:\/\/ Redis URL/);
    expect(() => createCoordinator({ ...base, redisUrl: tlsUrl(), redisTlsCaFile: "/nonexistent/ca.pem" }, { logger })).toThrow(
      /cannot read --redis-tls-ca-file \/nonexistent\/ca.pem/,
    );
    expect(() => createCoordinator({ ...base, redisUrl: "http://127.0.0.1:6379" }, { logger })).toThrow(/redis:\/\/ \(or rediss:\/\/ for TLS\)/);
  });
});
