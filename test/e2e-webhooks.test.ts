// Batch webhooks end to end, to a local receiver: each terminal status (completed,
// failed, expired, cancelled) delivers exactly its one OpenAI event to the tenant that
// configured a webhook (and nothing to a tenant that did not), every delivery verified
// with the official openai SDK's client.webhooks.unwrap; a receiver that fails three
// times still gets the event (the same event, with backoff between attempts); and a
// coordinator killed -9 while a delivery is in flight has it delivered after a restart.
import { randomBytes } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import OpenAI from "openai";
import { afterEach, beforeAll, describe, expect, test } from "vitest";
import { batchApi } from "./support/batch-api.js";
import { chatLines, toJsonl } from "./support/batch-requests.js";
import { API_KEY, clusterSettings, coordinatorOptions, spawnCoordinator, spawnWorker, startInProcessCoordinator } from "./support/e2e-cluster.js";
import { E2E_MODEL, e2eModelDir } from "./support/e2e-model.js";
import { metricValue } from "./support/prometheus-text.js";

const QUIET_KEY = "sk-e2e-quiet";
const IDLE_MODEL = "idle-model"; // accepted at ingest, served by no worker: its batches wait
const FINAL = ["completed", "failed", "expired", "cancelled"];

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  atMs: number;
}

/** A webhook receiver on loopback; `answer` decides each request's fate (default 200). */
class Receiver {
  readonly received: Received[] = [];
  answer: (r: Received, n: number, res: ServerResponse) => void = (_r, _n, res) => res.writeHead(200).end();
  private server!: Server;
  private waiters: Array<() => void> = [];
  url = "";

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        const r = { headers: req.headers, body, atMs: Date.now() };
        this.received.push(r);
        this.answer(r, this.received.length, res);
        for (const w of this.waiters.splice(0)) w();
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const addr = this.server.address() as { port: number };
    this.url = `http://127.0.0.1:${addr.port}/hooks/batchgen`;
  }

  async waitFor(count: number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < count) {
      if (Date.now() > deadline) throw new Error(`receiver got ${this.received.length} of ${count} requests`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

const secret = `whsec_${randomBytes(32).toString("base64")}`;
const sdk = new OpenAI({ apiKey: "unused", webhookSecret: secret });
const cleanups: Array<() => Promise<void> | void> = [];
let modelDir: string;

beforeAll(async () => {
  modelDir = await e2eModelDir();
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function receiver(): Promise<Receiver> {
  const r = new Receiver();
  await r.start();
  cleanups.push(() => r.stop());
  return r;
}

/** Settings of a test's coordinator(s): a webhook for tenant e2e only; retries fast. */
function webhookOptions(url: string) {
  return {
    apiKeys: [`${API_KEY}:e2e`, `${QUIET_KEY}:quiet`],
    webhooks: [`e2e:${secret}:${url}`],
    webhookPollMs: 100,
    webhookRetryMinMs: 200,
    webhookRetryMaxMs: 2_000,
    webhookClaimMs: 2_000,
    webhookTimeoutMs: 30_000,
    models: [E2E_MODEL, IDLE_MODEL],
    completionWindows: ["24h", "2s"],
  };
}

describe("batch webhooks", () => {
  test("each terminal status delivers exactly its documented event, signed so the openai SDK's webhooks.unwrap verifies it", async () => {
    const hook = await receiver();
    const settings = clusterSettings();
    cleanups.push(() => settings.cleanup());
    const coordinator = await startInProcessCoordinator(coordinatorOptions(settings, webhookOptions(hook.url)));
    cleanups.push(() => coordinator.stop());
    const worker = spawnWorker("hook-worker", { coordinator: coordinator.grpcAddress, modelDir });
    cleanups.push(() => worker.stop());
    await worker.connected();
    const api = batchApi(coordinator.httpUrl, API_KEY);
    const quiet = batchApi(coordinator.httpUrl, QUIET_KEY);

    const submit = async (a: typeof api, lines: object[], extra: Record<string, unknown> = {}) =>
      a.createBatch((await a.upload(toJsonl(lines as never))).id, "/v1/chat/completions", extra);
    const completed = await submit(api, chatLines(4, { model: E2E_MODEL, prefix: "done" }));
    const failed = await submit(api, [{ custom_id: "bad", method: "POST", url: "/v1/chat/completions", body: { model: E2E_MODEL } }]);
    const expired = await submit(api, chatLines(2, { model: IDLE_MODEL, prefix: "late" }), { completion_window: "2s" });
    const cancelled = await submit(api, chatLines(2, { model: IDLE_MODEL, prefix: "stop" }));
    await api.waitForStatus(cancelled.id, ["in_progress"], 30_000);
    await api.cancelBatch(cancelled.id);
    const quietBatch = await submit(quiet, chatLines(2, { model: E2E_MODEL, prefix: "quiet" }));

    const expectStatus = { [completed.id]: "completed", [failed.id]: "failed", [expired.id]: "expired", [cancelled.id]: "cancelled" };
    for (const [id, status] of Object.entries(expectStatus)) expect((await api.waitForStatus(id, FINAL, 60_000)).status).toBe(status);
    expect((await quiet.waitForStatus(quietBatch.id, FINAL, 60_000)).status).toBe("completed");

    await hook.waitFor(4);
    await new Promise((r) => setTimeout(r, 1_500)); // anything extra (a double, the quiet tenant's) would arrive by now
    expect(hook.received).toHaveLength(4);
    const events = await Promise.all(hook.received.map((r) => sdk.webhooks.unwrap(r.body, r.headers as Record<string, string>)));
    const byBatch = new Map(events.map((e) => [(e.data as { id: string }).id, e]));
    expect([...byBatch.keys()].sort()).toEqual(Object.keys(expectStatus).sort());
    for (const [id, status] of Object.entries(expectStatus)) {
      const e = byBatch.get(id)!;
      expect(e).toEqual({ id: expect.stringMatching(/^evt_\w+$/), object: "event", created_at: expect.any(Number), type: `batch.${status}`, data: { id } });
      expect(Math.abs(e.created_at - Date.now() / 1000)).toBeLessThan(120);
    }
    for (const r of hook.received) {
      expect(r.headers["webhook-id"]).toBe(JSON.parse(r.body).id);
      expect(r.headers["content-type"]).toBe("application/json");
    }
    // A tampered body or another secret does not verify.
    const first = hook.received[0]!;
    await expect(sdk.webhooks.unwrap(first.body.replace("batch.", "batch.x"), first.headers as Record<string, string>)).rejects.toThrow();
    await expect(sdk.webhooks.unwrap(first.body, first.headers as Record<string, string>, `whsec_${randomBytes(32).toString("base64")}`)).rejects.toThrow();
  });

  test("a receiver that fails three times still gets the event, retried with backoff", async () => {
    const hook = await receiver();
    hook.answer = (_r, n, res) => res.writeHead(n <= 3 ? 503 : 200).end();
    const settings = clusterSettings();
    cleanups.push(() => settings.cleanup());
    const coordinator = await startInProcessCoordinator(coordinatorOptions(settings, webhookOptions(hook.url)));
    cleanups.push(() => coordinator.stop());
    const api = batchApi(coordinator.httpUrl, API_KEY);
    const batch = await api.createBatch((await api.upload(toJsonl(chatLines(2, { model: IDLE_MODEL })))).id, "/v1/chat/completions");
    await api.waitForStatus(batch.id, ["in_progress"], 30_000);
    await api.cancelBatch(batch.id);

    await hook.waitFor(4);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(hook.received).toHaveLength(4);
    const ids = new Set(hook.received.map((r) => r.headers["webhook-id"]));
    expect(ids.size, "every attempt sends the same event").toBe(1);
    const event = await sdk.webhooks.unwrap(hook.received[3]!.body, hook.received[3]!.headers as Record<string, string>);
    expect(event).toMatchObject({ type: "batch.cancelled", data: { id: batch.id } });
    const gaps = hook.received.slice(1).map((r, i) => r.atMs - hook.received[i]!.atMs);
    // Backoff doubles from webhookRetryMinMs: at least 200, 400, 800 ms between attempts.
    expect(gaps[0], `gaps ${gaps.join(", ")} ms`).toBeGreaterThanOrEqual(200 - 50);
    expect(gaps[1], `gaps ${gaps.join(", ")} ms`).toBeGreaterThanOrEqual(400 - 50);
    expect(gaps[2], `gaps ${gaps.join(", ")} ms`).toBeGreaterThanOrEqual(800 - 50);
    const metrics = await coordinator.coordinator.metrics.registry.metrics();
    expect(metricValue(metrics, "batchgen_coordinator_webhook_deliveries_total", { outcome: "retry" })).toBe(3);
    expect(metricValue(metrics, "batchgen_coordinator_webhook_deliveries_total", { outcome: "delivered" })).toBe(1);
  });

  test("a coordinator killed -9 mid-delivery delivers the event after a restart", async () => {
    const hook = await receiver();
    let held: ServerResponse | null = null;
    // The first attempt is never answered: the coordinator dies waiting for it.
    hook.answer = (_r, n, res) => {
      if (n === 1) held = res;
      else res.writeHead(200).end();
    };
    const settings = clusterSettings();
    cleanups.push(() => settings.cleanup());
    const options = coordinatorOptions(settings, webhookOptions(hook.url));
    const first = await spawnCoordinator("hook-coordinator-1", options);
    cleanups.push(() => first.stop());
    const api = batchApi(first.httpUrl, API_KEY);
    const batch = await api.createBatch((await api.upload(toJsonl(chatLines(2, { model: IDLE_MODEL })))).id, "/v1/chat/completions");
    await api.waitForStatus(batch.id, ["in_progress"], 30_000);
    await api.cancelBatch(batch.id);

    await hook.waitFor(1);
    expect(held).not.toBeNull();
    first.process.kill("SIGKILL");
    expect((await first.process.exited).signal).toBe("SIGKILL");
    const killedAt = Date.now();

    const second = await spawnCoordinator("hook-coordinator-2", options);
    cleanups.push(() => second.stop());
    await hook.waitFor(2, 30_000);
    const [lost, again] = hook.received;
    expect(again!.headers["webhook-id"]).toBe(lost!.headers["webhook-id"]);
    const event = await sdk.webhooks.unwrap(again!.body, again!.headers as Record<string, string>);
    expect(event).toMatchObject({ type: "batch.cancelled", data: { id: batch.id } });
    // Not before the dead replica's claim ran out (webhookClaimMs), and not much after.
    expect(again!.atMs - lost!.atMs).toBeGreaterThanOrEqual(2_000 - 100);
    expect(again!.atMs - killedAt).toBeLessThan(15_000);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(hook.received).toHaveLength(2);
  });
});
