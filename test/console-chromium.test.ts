// The web console at /console in a real headless Chromium (Debian's `chromium`, driven by
// playwright-core; never `playwright install`), against a real coordinator and a worker
// process on the CPU engine: a batch submitted through the API shows up, its progress
// moves, its page has the timeline and the tokens/s chart, its output downloads; the
// fleet lists the worker; a second batch is cancelled from its page. Screenshots go to
// test/artifacts/console/ (gitignored).
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { batchApi, type BatchApi } from "./support/batch-api.js";
import { chatLines, toJsonl } from "./support/batch-requests.js";
import { API_KEY, clusterSettings, coordinatorOptions, spawnWorker, startInProcessCoordinator, type ClusterSettings, type RunningCoordinator, type WorkerProcess } from "./support/e2e-cluster.js";
import { E2E_SLOW_MODEL, e2eSlowModelDir } from "./support/e2e-model.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const SHOTS = join(ROOT, "test", "artifacts", "console");
const CHROMIUM = "/usr/bin/chromium";
const LINES = 48;

let settings: ClusterSettings;
let coordinator: RunningCoordinator;
let worker: WorkerProcess;
let api: BatchApi;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  expect(existsSync(CHROMIUM), "Debian's chromium (apt-get install chromium)").toBe(true);
  expect(existsSync(join(ROOT, "packages/console/dist/console.js")), "the console is built (pnpm build)").toBe(true);
  mkdirSync(SHOTS, { recursive: true });
  const modelDir = await e2eSlowModelDir();
  settings = clusterSettings();
  coordinator = await startInProcessCoordinator(coordinatorOptions(settings, { shardLines: 12 }));
  worker = spawnWorker("console-worker", { coordinator: coordinator.grpcAddress, modelDir, maxSeqs: 8 });
  await worker.connected();
  api = batchApi(coordinator.httpUrl, API_KEY);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
  });
  page = await browser.newPage({ acceptDownloads: true, viewport: { width: 1400, height: 900 } });
});

afterAll(async () => {
  await browser?.close();
  await worker?.stop();
  await coordinator?.stop();
  settings?.cleanup();
});

async function submit(lines: number, maxTokens: number, prefix: string): Promise<string> {
  const requests = chatLines(lines, { model: E2E_SLOW_MODEL, prefix, minTokens: maxTokens - 20, maxTokens }).map((l) => ({ ...l, body: { ...l.body, ignore_eos: true } }));
  const file = await api.upload(toJsonl(requests));
  return (await api.createBatch(file.id, "/v1/chat/completions")).id;
}

const doneCount = async (p: Page | Locator, testid = "progress-text"): Promise<number> => Number((await p.getByTestId(testid).first().textContent())!.split("/")[0]);

describe("the web console in headless Chromium", () => {
  it("asks for the API key, then lists batches and the fleet", async () => {
    await page.goto(`${coordinator.httpUrl}/console`);
    await expect.poll(() => page.locator("#notice").textContent()).toMatch(/Enter an API key/);
    await page.fill("#api-key", "sk-wrong");
    await page.click("#key-form button");
    await expect.poll(() => page.locator("#notice").textContent()).toMatch(/API key was refused/);
    await page.fill("#api-key", API_KEY);
    await page.click("#key-form button");
    await page.getByTestId("fleet-row").first().waitFor();
    const row = page.locator('[data-testid="fleet-row"][data-worker-id="console-worker"]');
    await expect.poll(() => row.textContent()).toContain(E2E_SLOW_MODEL);
    expect(await row.textContent()).toMatch(/cpu/i);
    expect(await row.getByTestId("last-heartbeat").textContent()).toMatch(/^\d+ s ago$/);
    // What the page shows is the public GET /v1/fleet.
    const fleet = (await (await fetch(`${coordinator.httpUrl}/v1/fleet`, { headers: { authorization: `Bearer ${API_KEY}` } })).json()) as { data: Array<Record<string, unknown>> };
    expect(fleet.data).toEqual([
      expect.objectContaining({ object: "fleet.worker", id: "console-worker", model: E2E_SLOW_MODEL, device: expect.stringMatching(/^cpu/), leases: expect.any(Number), kv_blocks_total: 1024 }),
    ]);
    expect(Date.now() / 1000 - (fleet.data[0]!.last_heartbeat_at as number)).toBeLessThan(10);
    expect((await fetch(`${coordinator.httpUrl}/v1/fleet`)).status, "the fleet needs an API key").toBe(401);
    await page.screenshot({ path: join(SHOTS, "01-fleet.png"), fullPage: true });
  });

  it("drives a real job: progress moves in the list, the batch page shows its timeline and chart, the output downloads", async () => {
    const id = await submit(LINES, 120, "console");
    const row = page.locator(`[data-testid="batch-row"][data-batch-id="${id}"]`);
    await row.waitFor({ timeout: 30_000 });
    // Progress moves while it runs (watched in the list, polled by the page itself).
    await expect.poll(async () => (await row.getByTestId("status").textContent()) === "in_progress" && (await doneCount(row)) > 0, { timeout: 60_000 }).toBe(true);
    const first = await doneCount(row);
    await expect.poll(() => doneCount(row), { timeout: 60_000 }).toBeGreaterThan(first);
    await page.screenshot({ path: join(SHOTS, "02-batches-running.png"), fullPage: true });

    await row.getByRole("link", { name: id }).click();
    const view = page.locator(`[data-testid="batch-page"][data-batch-id="${id}"]`);
    await view.waitFor();
    await expect.poll(() => view.getByTestId("tokens-per-second").textContent(), { timeout: 30_000 }).toMatch(/^[1-9][\d.]*$/);
    await page.screenshot({ path: join(SHOTS, "03-batch-running.png"), fullPage: true });
    await expect.poll(() => view.getByTestId("status").textContent(), { timeout: 120_000 }).toBe("completed");
    expect(Number(await view.getByTestId("tps-chart").getAttribute("data-samples"))).toBeGreaterThan(1);
    const timeline = await view.getByTestId("timeline").textContent();
    for (const stage of ["created", "in_progress", "finalizing", "completed"]) expect(timeline).toContain(stage);
    expect(await view.getByTestId("counts").textContent()).toBe(`${LINES} / 0`);
    await page.screenshot({ path: join(SHOTS, "04-batch-completed.png"), fullPage: true });

    const [dl] = await Promise.all([page.waitForEvent("download"), view.getByTestId("download-output").click()]);
    expect(dl.suggestedFilename()).toBe(`${id}-output.jsonl`);
    const saved = join(SHOTS, dl.suggestedFilename());
    await dl.saveAs(saved);
    const lines = readFileSync(saved, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { custom_id: string; response: { status_code: number } });
    expect(lines.map((l) => l.custom_id)).toEqual(Array.from({ length: LINES }, (_, i) => `console-${i}`));
    expect(lines.every((l) => l.response.status_code === 200)).toBe(true);
  });

  it("cancels a running batch from its page", async () => {
    const id = await submit(LINES * 4, 200, "cancel");
    await page.goto(`${coordinator.httpUrl}/console#/batch/${id}`);
    const view = page.locator(`[data-testid="batch-page"][data-batch-id="${id}"]`);
    await expect.poll(() => view.getByTestId("status").textContent(), { timeout: 30_000 }).toBe("in_progress");
    page.once("dialog", (d) => void d.dismiss()); // an alert would mean the cancel failed
    await view.getByTestId("cancel-button").click();
    await expect.poll(() => view.getByTestId("status").textContent(), { timeout: 60_000 }).toBe("cancelled");
    expect(await view.getByTestId("timeline").textContent()).toMatch(/cancelling.*cancelled/s);
    const succeeded = Number((await view.getByTestId("counts").textContent())!.split(" / ")[0]);
    expect(succeeded).toBeLessThan(LINES * 4);
    // Lines the cancel kept from running are in the error file; the page shows the first.
    await expect.poll(() => view.getByTestId("first-errors").textContent(), { timeout: 10_000 }).toMatch(/batch_cancelled/);
    await page.screenshot({ path: join(SHOTS, "05-batch-cancelled.png"), fullPage: true });
    const batch = await api.getBatch(id);
    expect(batch.status).toBe("cancelled");
    expect(batch.request_counts.completed).toBe(succeeded);
  });
});
