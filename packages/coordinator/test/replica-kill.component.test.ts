// A coordinator replica killed with SIGKILL mid-batch (a real `node dist/main.js`
// process next to an in-process replica on the same Redis prefix and store): the leases
// it held expire, the surviving replica's stalled checker puts the shard back, and the
// batch completes with every line exactly once. Workers are scripted gRPC clients (test
// doubles of the worker package), as in the other component tests.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { ScriptedWorker } from "./support/scripted-worker.js";
import { api, chatLine, KEY_A, MODEL, parseJsonl, startCluster, submitBatch, waitFor, waitForStatus, WORKER_TOKEN, type Cluster } from "./support/harness.js";

const MAIN = fileURLToPath(new URL("../dist/main.js", import.meta.url));

let cluster: Cluster | null = null;
let child: ChildProcess | null = null;
const workers: ScriptedWorker[] = [];

afterEach(async () => {
  for (const w of workers.splice(0)) w.kill();
  if (child && child.exitCode === null) child.kill("SIGKILL");
  child = null;
  await cluster?.stop();
  cluster = null;
});

async function startReplicaProcess(c: Cluster): Promise<{ grpcPort: number; httpPort: number }> {
  child = spawn(
    process.execPath,
    [MAIN, "--http-port", "0", "--grpc-port", "0", "--queue-prefix", c.prefix, "--store-url", c.storeDir, "--redis-url", process.env.REDIS_URL!,
      "--api-keys", `${KEY_A}:tenant-a`, "--worker-token", WORKER_TOKEN, "--lock-duration-ms", "2000", "--stalled-interval-ms", "500",
      "--heartbeat-interval-ms", "1000", "--monitor-interval-ms", "200", "--shard-lines", "100", "--ack-every", "5", "--lease-poll-ms", "100", "--log-level", "info"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("replica did not start")), 20_000);
    child!.once("exit", (code) => reject(new Error(`replica exited with ${code}`)));
    createInterface({ input: child!.stderr! }).on("line", (line) => {
      if (!line.includes('"coordinator started"')) return;
      clearTimeout(timer);
      const rec = JSON.parse(line) as { http_port: number; grpc_port: number };
      resolve({ grpcPort: rec.grpc_port, httpPort: rec.http_port });
    });
  });
}

describe("replica killed with SIGKILL (component)", () => {
  it("the surviving replica completes the batch: 0 lines lost, 0 doubled", async () => {
    cluster = await startCluster({ shardLines: 100, lockDurationMs: 2_000, stalledIntervalMs: 500, ackEvery: 5 });
    const survivor = cluster.url();
    const doomed = await startReplicaProcess(cluster);
    const w1 = new ScriptedWorker({ address: `127.0.0.1:${doomed.grpcPort}`, model: MODEL, token: WORKER_TOKEN, credit: 100, lineDelayMs: 15 });
    workers.push(w1);
    await w1.start();
    // The batch is created through the doomed replica's HTTP API, and watched through the survivor's.
    const ids = Array.from({ length: 200 }, (_, i) => `k${i}`);
    const b = await submitBatch(`http://127.0.0.1:${doomed.httpPort}`, ids.map((id) => chatLine(id)));
    await waitFor("results persisted through the doomed replica", async () => w1.acked.size >= 20);
    child!.kill("SIGKILL");
    await new Promise((r) => child!.once("exit", r));
    w1.kill();

    // The worker "reconnects" to the surviving replica.
    const w2 = new ScriptedWorker({ address: cluster.grpc(), model: MODEL, token: WORKER_TOKEN, credit: 200 });
    workers.push(w2);
    await w2.start();
    const done = await waitForStatus(survivor, b.id, ["completed"], KEY_A, 30_000);
    expect(done.request_counts).toEqual({ total: 200, completed: 200, failed: 0 });
    const out = parseJsonl((await api(survivor, "GET", `/v1/files/${done.output_file_id}/content`)).body as string);
    expect(out.map((l) => l.custom_id)).toEqual(ids);
    // The shard w1 held came back only after its lock expired, without the lines it had finished.
    const reLeased = w2.leases.find((l) => l.shardIndex === w1.leases[0]!.shardIndex)!;
    expect(reLeased.lines.length).toBeLessThanOrEqual(100 - 20);
  });
});
