// A real `prometheus` (Debian's package) for tests: scrapes the targets of a file_sd
// file every second (targets can be added while it runs), keeps its TSDB in a temp
// folder, and answers PromQL through its HTTP API.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./global-setup.js";

/** One series of a query result: its labels and [unix seconds, value] samples. */
export interface PromSeries {
  metric: Record<string, string>;
  values: Array<[number, number]>;
}

export class PrometheusServer {
  private targets: Array<{ job: string; address: string }> = [];
  private constructor(
    readonly url: string,
    private readonly dir: string,
    private readonly child: ChildProcess,
    private readonly log: () => string,
  ) {}

  static async start(): Promise<PrometheusServer> {
    const dir = mkdtempSync(join(tmpdir(), "bg-prom-"));
    const port = await freePort();
    writeFileSync(join(dir, "targets.json"), "[]");
    writeFileSync(
      join(dir, "prometheus.yml"),
      [
        "global: { scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 900ms }",
        "scrape_configs:",
        "  - job_name: batchgen",
        "    file_sd_configs: [{ files: [targets.json], refresh_interval: 1s }]",
      ].join("\n") + "\n",
    );
    let log = "";
    const child = spawn(
      "prometheus",
      [`--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`],
      { cwd: dir, stdio: ["ignore", "pipe", "pipe"] },
    );
    for (const s of [child.stdout!, child.stderr!]) s.on("data", (d) => (log = (log + d).slice(-20_000)));
    const started = new Promise<void>((resolve, reject) => {
      child.once("error", (err) => reject(new Error(`cannot start prometheus (apt-get install prometheus): ${err.message}`)));
      child.once("exit", (code) => reject(new Error(`prometheus exited (${code})\n${log}`)));
      const poll = async () => {
        const ok = await fetch(`http://127.0.0.1:${port}/-/ready`).then((r) => r.ok, () => false);
        if (ok) resolve();
        else setTimeout(() => void poll(), 100);
      };
      void poll();
    });
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`prometheus not ready in 30 s\n${log}`)), 30_000).unref());
    await Promise.race([started, timeout]);
    return new PrometheusServer(`http://127.0.0.1:${port}`, dir, child, () => log);
  }

  /** Adds a scrape target (host:port, /metrics) under `instance` = job name given. */
  addTarget(job: string, address: string): void {
    this.targets.push({ job, address });
    const tmp = join(this.dir, "targets.json.tmp");
    writeFileSync(tmp, JSON.stringify(this.targets.map((t) => ({ targets: [t.address], labels: { component: t.job } }))));
    renameSync(tmp, join(this.dir, "targets.json"));
  }

  /**
   * Resolves once the targets of these jobs (default: all added so far) have been scraped
   * successfully (up == 1). Prometheus applies target changes at most every 5 s, so add
   * targets early: one that is not listening yet just fails its scrapes until it is.
   */
  async waitForTargets(jobs: string[] = this.targets.map((t) => t.job), timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const up = (await this.query("up")).filter((s) => jobs.includes(s.metric.component ?? ""));
      if (up.length === jobs.length && up.every((s) => s.values.at(-1)?.[1] === 1)) return;
      if (Date.now() > deadline) throw new Error(`targets not all up: ${JSON.stringify(up)}\n${this.log()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** An instant query now (each series with its one sample). */
  query(expr: string, atSec?: number): Promise<PromSeries[]> {
    const params = new URLSearchParams({ query: expr });
    if (atSec !== undefined) params.set("time", String(atSec));
    return this.api("query", params);
  }

  /** A range query over [startSec, endSec] every stepSec, as Grafana runs a panel. */
  queryRange(expr: string, startSec: number, endSec: number, stepSec: number): Promise<PromSeries[]> {
    return this.api("query_range", new URLSearchParams({ query: expr, start: String(startSec), end: String(endSec), step: String(stepSec) }));
  }

  private async api(kind: string, params: URLSearchParams): Promise<PromSeries[]> {
    const res = await fetch(`${this.url}/api/v1/${kind}?${params}`);
    const body = (await res.json()) as {
      status: string;
      error?: string;
      data?: { resultType: string; result: Array<{ metric: Record<string, string>; value?: [number, string]; values?: Array<[number, string]> }> };
    };
    if (body.status !== "success") throw new Error(`prometheus ${kind} ${params.get("query")}: ${body.error}`);
    const { resultType, result } = body.data!;
    if (resultType !== "vector" && resultType !== "matrix") throw new Error(`prometheus ${kind}: unexpected ${resultType}`);
    return result.map((r) => ({ metric: r.metric, values: (r.values ?? [r.value!]).map(([t, v]) => [t, Number(v)] as [number, number]) }));
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once("exit", r));
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
