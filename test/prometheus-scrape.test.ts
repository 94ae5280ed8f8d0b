// The dashboards and the autoscaler proven on a real Prometheus (Debian's `prometheus`)
// scraping a real coordinator and a real worker process on the CPU engine through one
// batch's life:
//  - the KEDA ScaledObject's trigger query (k8s/base/scaledobject.yaml), with KEDA's
//    rule for the replica count it implies, gives 0 before the batch, N = ceil(shards /
//    threshold) while its shards wait for a worker, at least 1 while only leased shards
//    remain (busy workers are not scaled away), and 0 after;
//  - every panel query of deploy/grafana/dashboards/batchgen.json, run as Grafana runs
//    it (a range query over the job, $__rate_interval filled in), returns data.
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { batchApi } from "./support/batch-api.js";
import { chatLines, toJsonl } from "./support/batch-requests.js";
import { API_KEY, clusterSettings, coordinatorOptions, spawnWorker, startInProcessCoordinator, type ClusterSettings, type RunningCoordinator, type WorkerProcess } from "./support/e2e-cluster.js";
import { E2E_SLOW_MODEL, e2eSlowModelDir } from "./support/e2e-model.js";
import { freePort } from "./support/global-setup.js";
import { PrometheusServer, type PromSeries } from "./support/prometheus-server.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
// On the slow e2e model the job runs ~10-15 s on the CPU engine: several scrapes in each
// phase (shards queued and leased, only leased).
const LINES = 96;
const SHARD_LINES = 24; // 4 shards
const RATE_INTERVAL = "10s"; // Grafana's $__rate_interval for a 1 s scrape interval is 4 s; a little wider is steadier here

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const scaledObject = parseAllDocuments(readFileSync(join(ROOT, "k8s/base/scaledobject.yaml"), "utf8"))[0]!.toJS() as Obj;
const trigger = (scaledObject.spec.triggers as Obj[])[0]!;
const KEDA_QUERY = String(trigger.metadata.query);

/**
 * The replica count KEDA sets for a Prometheus trigger value: at or below
 * activationThreshold the scaler is inactive and the Deployment goes to minReplicaCount
 * (0 here); above it the HPA's AverageValue target gives ceil(value / threshold),
 * within [max(1, min), max]. An empty result counts as 0 (ignoreNullValues, default true).
 */
function kedaReplicas(value: number): number {
  const min = Number(scaledObject.spec.minReplicaCount ?? 0);
  const max = Number(scaledObject.spec.maxReplicaCount ?? 100);
  if (value <= Number(trigger.metadata.activationThreshold ?? 0)) return min;
  return Math.min(max, Math.max(1, min, Math.ceil(value / Number(trigger.metadata.threshold))));
}

const scalar = (r: PromSeries[]): number => {
  expect(r.length, "a scalar-like query returns at most one series").toBeLessThanOrEqual(1);
  return r[0]?.values.at(-1)?.[1] ?? 0;
};

let settings: ClusterSettings;
let coordinator: RunningCoordinator;
let prometheus: PrometheusServer;
let worker: WorkerProcess | undefined;
let modelDir: string;
let workerMetricsPort: number;

beforeAll(async () => {
  modelDir = await e2eSlowModelDir();
  settings = clusterSettings();
  coordinator = await startInProcessCoordinator(coordinatorOptions(settings, { shardLines: SHARD_LINES, models: [E2E_SLOW_MODEL] }));
  prometheus = await PrometheusServer.start();
  prometheus.addTarget("coordinator", coordinator.httpUrl.replace("http://", ""));
  // The worker starts later, on this port; its scrapes fail until then.
  workerMetricsPort = await freePort();
  prometheus.addTarget("worker", `127.0.0.1:${workerMetricsPort}`);
  await prometheus.waitForTargets(["coordinator"]);
});

afterAll(async () => {
  await worker?.stop();
  await prometheus?.stop();
  await coordinator?.stop();
  settings?.cleanup();
});

/** Polls an instant query until `ok` accepts its value (Prometheus needs a scrape or two). */
async function waitForValue(expr: string, ok: (v: number) => boolean, what: string, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = NaN;
  for (;;) {
    last = scalar(await prometheus.query(expr));
    if (ok(last)) return last;
    if (Date.now() > deadline) throw new Error(`${what}: ${expr} stayed at ${last}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe("a real Prometheus scraping a real job", () => {
  let jobStartSec = 0;
  let workerStartSec = 0;
  let jobEndSec = 0;

  it("the KEDA trigger gives 0 workers, then ceil(shards / threshold) as lines queue, then 0", async () => {
    jobStartSec = Date.now() / 1000;
    expect(kedaReplicas(scalar(await prometheus.query(KEDA_QUERY))), "no backlog: no workers").toBe(0);

    // The batch's shards queue with no worker connected.
    const api = batchApi(coordinator.httpUrl, API_KEY);
    // ignore_eos (an extension): random weights would otherwise end lines at random.
    const lines = chatLines(LINES, { model: E2E_SLOW_MODEL, prefix: "prom", minTokens: 120, maxTokens: 160 }).map((l) => ({ ...l, body: { ...l.body, ignore_eos: true } }));
    const file = await api.upload(toJsonl(lines));
    const batch = await api.createBatch(file.id, "/v1/chat/completions");
    const shards = LINES / SHARD_LINES;
    const backlog = await waitForValue(KEDA_QUERY, (v) => v === shards, "the backlog reaches Prometheus");
    expect(kedaReplicas(backlog)).toBe(Math.ceil(shards / Number(trigger.metadata.threshold)));
    expect(kedaReplicas(backlog)).toBeGreaterThan(1);

    // A worker takes leases: queued + leased is what the trigger counts.
    workerStartSec = Date.now() / 1000;
    worker = spawnWorker("prom-worker", { coordinator: coordinator.grpcAddress, modelDir, metricsPort: workerMetricsPort, maxSeqs: 8 });
    await worker.connected();
    const done = await api.waitForStatus(batch.id, ["completed", "failed", "cancelled", "expired"], 180_000);
    expect(done.status).toBe("completed");
    expect(done.request_counts).toEqual({ total: LINES, completed: LINES, failed: 0 });

    // After the batch: the series are there, at 0, and so is the desired count.
    await prometheus.waitForTargets();
    const after = await waitForValue(KEDA_QUERY, (v) => v === 0, "the backlog drains in Prometheus");
    expect(kedaReplicas(after)).toBe(0);
    expect((await prometheus.query(KEDA_QUERY)).length, "the gauge is present (0), not absent").toBe(1);
    jobEndSec = Date.now() / 1000;

    // Over the worker's run: whenever only leased shards were left, the trigger still
    // wanted a worker, and while shards queued it counted the leased ones too.
    const step = 1;
    const queued = await prometheus.queryRange('sum(max by (model) (batchgen_coordinator_shards{state="queued"}))', workerStartSec, jobEndSec, step);
    const leased = await prometheus.queryRange('sum(max by (model) (batchgen_coordinator_shards{state="leased"}))', workerStartSec, jobEndSec, step);
    const keda = await prometheus.queryRange(KEDA_QUERY, workerStartSec, jobEndSec, step);
    const at = (r: PromSeries[]) => new Map(r[0]?.values ?? []);
    const [q, l, k] = [at(queued), at(leased), at(keda)];
    let leasedOnly = 0;
    let both = 0;
    for (const [t, v] of k) {
      const qv = q.get(t);
      const lv = l.get(t);
      if (qv === undefined || lv === undefined) continue;
      expect(v, `trigger value at ${t}`).toBe(qv + lv);
      if (qv === 0 && lv > 0) {
        leasedOnly++;
        expect(kedaReplicas(v), `only leased shards at ${t}: a worker is still wanted`).toBeGreaterThanOrEqual(1);
      }
      if (qv > 0 && lv > 0) both++;
    }
    console.log(`KEDA over the worker run: ${k.size} samples, ${both} with queued and leased shards, ${leasedOnly} with only leased ones`);
    expect(leasedOnly, "samples with only leased shards left").toBeGreaterThan(0);
    expect(both, "samples with shards both queued and leased").toBeGreaterThan(0);
    const peak = Math.max(...[...k.values()]);
    expect(peak).toBeLessThanOrEqual(shards);
  });

  it("every dashboard panel's query returns data over the job", async () => {
    expect(jobEndSec, "the job ran").toBeGreaterThan(0);
    const dash = JSON.parse(readFileSync(join(ROOT, "deploy/grafana/dashboards/batchgen.json"), "utf8")) as Obj;
    const panels = (dash.panels as Obj[]).filter((p) => p.type !== "row");
    expect(panels.length).toBeGreaterThan(10);
    const empty: string[] = [];
    let checked = 0;
    for (const p of panels) {
      for (const t of p.targets as Obj[]) {
        const expr = String(t.expr).replaceAll("$__rate_interval", RATE_INTERVAL).replaceAll("$__interval", "1s");
        expect(expr, `${p.title}: no Grafana variable left`).not.toMatch(/\$/);
        const r = await prometheus.queryRange(expr, jobStartSec, jobEndSec, 1);
        const samples = r.flatMap((s) => s.values).filter(([, v]) => Number.isFinite(v));
        if (samples.length === 0) empty.push(`${p.title}: ${t.expr}`);
        checked++;
      }
    }
    expect(empty, "panel queries with no data").toEqual([]);
    expect(checked).toBeGreaterThan(20);
  });
});
