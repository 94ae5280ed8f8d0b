// The worker's Prometheus metrics (prefix batchgen_worker_). Token counters are the
// source of tokens/s in and out: rate(batchgen_worker_prompt_tokens_total[1m]) and
// rate(batchgen_worker_generation_tokens_total[1m]). Engine gauges are read from
// engine.stats() at scrape time.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { EngineStats } from "./engine-driver.js";
import type { LineOutcome } from "./line-runner.js";

export class WorkerMetrics {
  private readonly promptTokens: Counter;
  private readonly promptTokensCached: Counter;
  private readonly generationTokens: Counter;
  private readonly linesOk: { inc(): void };
  private readonly linesError: { inc(): void };
  private readonly leases: Counter;
  private readonly engineRequestSeconds: Histogram;
  private readonly connected: Gauge;
  private readonly loraLines: Counter;
  private readonly loraTokens: Counter;
  /** Errors logged and let pass, by site (SwallowedErrors); any count here is a bug. */
  readonly swallowedErrors: Counter<"site">;

  constructor(registry: Registry, engineStats: () => EngineStats | null) {
    const registers = [registry];
    this.promptTokens = new Counter({ name: "batchgen_worker_prompt_tokens_total", help: "Prompt tokens of finished lines", registers });
    this.promptTokensCached = new Counter({
      name: "batchgen_worker_prompt_tokens_cached_total",
      help: "Prompt tokens of finished lines served from the engine's prefix cache (the rest were computed)",
      registers,
    });
    this.generationTokens = new Counter({ name: "batchgen_worker_generation_tokens_total", help: "Generated tokens of finished lines", registers });
    const linesDone = new Counter({ name: "batchgen_worker_lines_done_total", help: "Lines finished, by outcome (ok | error)", labelNames: ["outcome"], registers });
    // Label children looked up once: a line costs no label hashing.
    this.linesOk = linesDone.labels("ok");
    this.linesError = linesDone.labels("error");
    this.leases = new Counter({ name: "batchgen_worker_leases_total", help: "Shard leases taken", registers });
    this.engineRequestSeconds = new Histogram({
      name: "batchgen_worker_engine_request_seconds",
      help: "Time a line spent in the engine, queue included",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    });
    this.loraLines = new Counter({
      name: "batchgen_worker_lora_lines_total",
      help: "Lines answered through a LoRA adapter, by adapter (base-model lines are the rest of lines_done)",
      labelNames: ["adapter"],
      registers,
    });
    this.loraTokens = new Counter({
      name: "batchgen_worker_lora_generation_tokens_total",
      help: "Tokens generated through a LoRA adapter, by adapter",
      labelNames: ["adapter"],
      registers,
    });
    this.swallowedErrors = new Counter({
      name: "batchgen_worker_swallowed_errors_total",
      help: "Errors of steps that never fail by contract (a line's finish, a lease's preparation), logged and let pass, by site: any is a bug.",
      labelNames: ["site"],
      registers,
    });
    this.connected = new Gauge({ name: "batchgen_worker_connected", help: "1 while a session with the coordinator is open", registers });
    const gauge = (name: string, help: string, read: (s: EngineStats) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const s = engineStats();
          if (s) this.set(read(s));
        },
      });
    gauge("batchgen_worker_requests_running", "Requests the engine is running", (s) => s.running);
    gauge("batchgen_worker_requests_waiting", "Requests waiting in the engine's queue", (s) => s.waiting);
    gauge("batchgen_worker_kv_blocks_used", "KV cache blocks in use", (s) => s.kvBlocksUsed);
    gauge("batchgen_worker_kv_blocks_total", "KV cache blocks in all", (s) => s.kvBlocksTotal);
    gauge("batchgen_worker_engine_step_seconds", "Duration of the engine's last step", (s) => s.lastStepMs / 1000);
    gauge("batchgen_worker_engine_steps", "Engine steps run since start", (s) => s.steps);
    gauge("batchgen_worker_engine_preemptions", "Requests preempted since start", (s) => s.preemptions);
    gauge("batchgen_worker_kv_blocks_cached", "Free KV blocks still holding a cached prefix", (s) => s.kvBlocksCached);
    gauge("batchgen_worker_kv_blocks_evicted", "Cached KV blocks dropped from the prefix cache to make room, since start", (s) => s.kvBlocksEvicted);
    gauge("batchgen_worker_engine_prompt_tokens_computed", "Prompt tokens the engine computed since start (recompute included)", (s) => s.promptTokensProcessed);
    gauge("batchgen_worker_lora_adapters_resident", "LoRA adapters in device memory now", (s) => s.lorasResident.length);
    gauge("batchgen_worker_lora_loads", "LoRA adapters read into device memory since start (first use or after an eviction)", (s) => s.loraLoads);
    gauge("batchgen_worker_engine_prompt_tokens_cached", "Prompt tokens the engine served from its prefix cache since start", (s) => s.promptTokensCached);
  }

  leaseTaken(_lines: number): void {
    this.leases.inc();
  }

  lineDone(outcome: LineOutcome): void {
    if (outcome.kind === "response") {
      this.promptTokens.inc(outcome.promptTokens);
      this.promptTokensCached.inc(outcome.cachedTokens);
      this.generationTokens.inc(outcome.completionTokens);
      this.engineRequestSeconds.observe(outcome.engineMs / 1000);
      this.linesOk.inc();
      if (outcome.lora !== undefined) {
        this.loraLines.inc({ adapter: outcome.lora });
        this.loraTokens.inc({ adapter: outcome.lora }, outcome.completionTokens);
      }
    } else if (outcome.kind === "error") {
      this.linesError.inc();
    }
  }

  setConnected(connected: boolean): void {
    this.connected.set(connected ? 1 : 0);
  }
}
