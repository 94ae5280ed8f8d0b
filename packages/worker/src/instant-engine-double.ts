// A test double for the engine that answers (almost) instantly, with no model: for
// unit tests of the worker and for the control-plane benchmark, which measures the
// coordinator and must not wait on inference. Never used to produce real results.
//
// Its "generation" is deterministic: the prompt's tokens repeated, up to
// min(maxTokens, completionTokens); a stop token id ends it early (finish "stop"),
// running out of tokens is "length". With maxSeqs set, at most that many requests
// "run" at once and the rest wait, as in the real engine.
import type { EngineDriver, EngineStats, GenerateRequest, GenerateResult } from "./engine-driver.js";

export interface InstantEngineDoubleOptions {
  maxModelLen?: number;
  /** Tokens to "generate" per request when maxTokens allows; default 8. */
  completionTokens?: number;
  /** Time a request takes once running, so tests can catch requests in flight; default 0. */
  delayMs?: number | ((request: GenerateRequest) => number);
  /** Requests running at once; default unlimited. */
  maxSeqs?: number;
  eosTokenIds?: number[];
  /** Keep every request in `requests` (unit tests); off by default so a long benchmark holds nothing. */
  recordRequests?: boolean;
  /** LoRA adapter names the double accepts (it answers the same for each). */
  loras?: string[];
}

interface Pending {
  id: string;
  request: GenerateRequest;
  resolve: (r: GenerateResult) => void;
  timer: NodeJS.Timeout | undefined;
  /** Admitted (counted in `running`), finishing on its timer or with the next ready batch. */
  running: boolean;
  queuedAt: number;
}

export class InstantEngineDouble implements EngineDriver {
  readonly model: EngineDriver["model"];
  readonly requests: GenerateRequest[] = [];
  private readonly pending = new Map<string, Pending>();
  private readonly waiting: Pending[] = [];
  private running = 0;
  /** Admitted zero-delay requests, finished together by one setImmediate. */
  private ready: Pending[] = [];
  private readyScheduled = false;
  private readonly completionTokens: number;
  private readonly delayMs: number | ((request: GenerateRequest) => number);
  private readonly maxSeqs: number;
  private readonly recordRequests: boolean;
  private nextId = 0;
  private promptTokensProcessed = 0;
  private generatedTokens = 0;
  private closed = false;

  constructor(opts: InstantEngineDoubleOptions = {}) {
    this.model = {
      maxModelLen: opts.maxModelLen ?? 2048,
      eosTokenIds: opts.eosTokenIds ?? [1],
      device: "cpu",
      deviceName: "instant engine double",
      loras: opts.loras ?? [],
    };
    this.completionTokens = opts.completionTokens ?? 8;
    this.delayMs = opts.delayMs ?? 0;
    this.maxSeqs = opts.maxSeqs ?? Number.POSITIVE_INFINITY;
    this.recordRequests = opts.recordRequests ?? false;
  }

  generate(request: GenerateRequest): Promise<GenerateResult> {
    if (this.closed) return Promise.reject(new Error("engine closed"));
    const id = request.id ?? `double-${this.nextId++}`;
    if (this.pending.has(id)) return Promise.reject(Object.assign(new Error(`duplicate request id ${id}`), { code: "invalid_argument" }));
    if (this.recordRequests) this.requests.push(request);
    return new Promise((resolve) => {
      const p: Pending = { id, request, resolve, timer: undefined, running: false, queuedAt: Date.now() };
      this.pending.set(id, p);
      this.waiting.push(p);
      this.admit();
    });
  }

  abort(id: string): void {
    const p = this.pending.get(id);
    if (!p) throw Object.assign(new Error(`no request with id ${id}`), { code: "not_found" });
    this.pending.delete(id);
    if (p.running) {
      if (p.timer) clearTimeout(p.timer);
      this.running--; // a ready-batch entry is skipped by finish(): no longer pending
    } else this.waiting.splice(this.waiting.indexOf(p), 1);
    p.resolve(this.result(p, [], "abort"));
    this.admit();
  }

  stats(): EngineStats {
    return {
      running: this.running,
      waiting: this.waiting.length,
      kvBlocksTotal: 0,
      kvBlocksUsed: 0,
      kvBlocksFree: 0,
      kvBlocksCached: 0,
      kvBlocksEvicted: 0,
      kvBlocksPeak: 0,
      promptTokensProcessed: this.promptTokensProcessed,
      promptTokensCached: 0,
      generatedTokens: this.generatedTokens,
      steps: 0,
      preemptions: 0,
      lastStepMs: 0,
      maxSeqs: Number.isFinite(this.maxSeqs) ? this.maxSeqs : 0,
      hostMs: 0,
      hostGapMs: 0,
      hostGaps: 0,
      grammarMasks: 0,
      grammarDistinctMasks: 0,
      grammarHostMs: 0,
      lorasResident: [...new Set(this.requests.map((r) => r.lora).filter((l): l is string => l !== undefined))],
      loraLoads: 0,
      loraEvictions: 0,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const id of [...this.pending.keys()]) this.abort(id);
  }

  private admit(): void {
    while (this.running < this.maxSeqs && this.waiting.length > 0) {
      const p = this.waiting.shift()!;
      const delay = typeof this.delayMs === "function" ? this.delayMs(p.request) : this.delayMs;
      this.running++;
      p.running = true;
      if (delay > 0) p.timer = setTimeout(() => this.finish(p), delay);
      else {
        // No delay: every request admitted meanwhile finishes in one macrotask.
        this.ready.push(p);
        if (!this.readyScheduled) {
          this.readyScheduled = true;
          setImmediate(() => this.finishReady());
        }
      }
    }
  }

  private finishReady(): void {
    this.readyScheduled = false;
    const ready = this.ready.splice(0);
    for (const p of ready) this.finish(p);
  }

  private finish(p: Pending): void {
    if (this.pending.get(p.id) !== p) return;
    this.pending.delete(p.id);
    this.running--;
    const prompt = p.request.prompt as ArrayLike<number>;
    const maxTokens = p.request.maxTokens ?? 16;
    const limit = Math.min(maxTokens, this.completionTokens);
    const eos = p.request.ignoreEos ? [] : this.model.eosTokenIds;
    const stopIds = p.request.stopTokenIds ?? [];
    const tokens: number[] = [];
    let reason: GenerateResult["finishReason"] = "length";
    for (let i = 0; i < limit; i++) {
      const t = prompt[i % prompt.length] ?? 0;
      tokens.push(t);
      if (eos.includes(t) || stopIds.includes(t)) {
        reason = "stop";
        break;
      }
    }
    // Ending before maxTokens reads as the model's own EOS.
    if (reason === "length" && tokens.length < maxTokens) reason = "stop";
    this.promptTokensProcessed += prompt.length;
    this.generatedTokens += tokens.length;
    p.resolve(this.result(p, tokens, reason));
    this.admit();
  }

  private result(p: Pending, tokens: number[], finishReason: GenerateResult["finishReason"]): GenerateResult {
    const ms = Date.now() - p.queuedAt;
    return {
      id: p.id,
      tokens,
      finishReason,
      promptTokens: p.request.prompt.length,
      cachedTokens: 0,
      completionTokens: tokens.length,
      preemptions: 0,
      timings: { queueMs: 0, firstTokenMs: ms, totalMs: ms },
    };
  }
}
