// Prompt token ids made in worker threads (prompt-thread.ts), each with its own copy of
// the model's tokenizer: the event loop stays free for the gRPC stream and heartbeats
// however long the prompts of a lease are. A prompt goes to the thread with the fewest
// prompts waiting; a thread that dies fails its prompts (engine_error) and is replaced.
import { Worker as Thread } from "node:worker_threads";
import { LineFailure } from "./line-failure.js";
import type { PromptSource } from "./prompt-source.js";
import type { PromptThreadData, PromptThreadReply } from "./prompt-thread.js";
import type { PromptRequest } from "./prompt-tokens.js";

// Under vitest this module runs from src/ (TypeScript): the thread runs the built file.
const THREAD_URL = new URL(import.meta.url.endsWith(".ts") ? "../dist/prompt-thread.js" : "./prompt-thread.js", import.meta.url);

interface Pending {
  resolve(ids: number[]): void;
  reject(err: Error): void;
}

interface PoolThread {
  thread: Thread;
  ready: Promise<void>;
  pending: Map<number, Pending>;
}

export class PromptPool implements PromptSource {
  private readonly threads: PoolThread[] = [];
  private nextId = 0;
  private closed = false;

  private constructor(
    private readonly data: PromptThreadData,
    size: number,
  ) {
    for (let i = 0; i < size; i++) this.threads.push(this.spawn());
  }

  /** Starts `size` threads and waits until each has loaded the tokenizer. */
  static async start(data: PromptThreadData, size: number): Promise<PromptPool> {
    const pool = new PromptPool(data, Math.max(1, size));
    try {
      await Promise.all(pool.threads.map((t) => t.ready));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  private spawn(): PoolThread {
    const thread = new Thread(THREAD_URL, { workerData: this.data });
    const pending = new Map<number, Pending>();
    const entry: PoolThread = { thread, pending, ready: Promise.resolve() };
    entry.ready = new Promise<void>((resolve, reject) => {
      thread.once("message", () => resolve());
      thread.once("error", reject);
    });
    entry.ready.catch(() => {}); // observed by start(); a later failure is handled below
    thread.on("message", (m: PromptThreadReply | { ready: true }) => {
      if (!("id" in m)) return;
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if (m.ok) p.resolve(Array.from(m.ids));
      else p.reject(m.code === "engine_error" ? new Error(m.message) : new LineFailure(m.code, m.message));
    });
    thread.on("error", (err) => this.lost(entry, err));
    thread.on("exit", (code) => this.lost(entry, new Error(`a tokenizer thread exited (code ${code})`)));
    return entry;
  }

  /** A thread died: its prompts fail, a fresh thread takes its place. */
  private lost(entry: PoolThread, err: Error): void {
    const i = this.threads.indexOf(entry);
    if (i < 0) return;
    for (const p of entry.pending.values()) p.reject(new Error(`tokenizing the prompt failed: ${err.message}`));
    entry.pending.clear();
    if (this.closed) return;
    this.threads[i] = this.spawn();
  }

  tokens(request: PromptRequest): Promise<number[]> {
    if (this.closed) return Promise.reject(new Error("the worker is stopping"));
    if (request.kind !== "chat" && request.promptTokenIds) return Promise.resolve([...request.promptTokenIds]);
    let best = this.threads[0]!;
    for (const t of this.threads) if (t.pending.size < best.pending.size) best = t;
    const id = this.nextId++;
    const { kind, messages, prompt } = request;
    return new Promise<number[]>((resolve, reject) => {
      best.pending.set(id, { resolve, reject });
      best.thread.postMessage({ id, request: { kind, messages, prompt } });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const threads = this.threads.splice(0);
    await Promise.all(threads.map((t) => t.thread.terminate()));
    for (const t of threads) for (const p of t.pending.values()) p.reject(new Error("the worker is stopping"));
  }
}
