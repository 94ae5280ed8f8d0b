// When a background step that failed (an ingest, a finalize: the store or Redis away) may
// run again: exponential backoff with jitter per key, so a fault that lasts costs a few
// attempts a minute instead of one per monitor tick.
import { backoffMs } from "./grpc/shard-failures.js";

export class RetrySchedule {
  private readonly failed = new Map<string, { count: number; retryAtMs: number }>();

  constructor(
    private readonly baseMs: number,
    private readonly capMs = 60_000,
  ) {}

  /** True while `key` waits out its backoff. */
  waiting(key: string, nowMs = Date.now()): boolean {
    const f = this.failed.get(key);
    return f !== undefined && nowMs < f.retryAtMs;
  }

  /** Count a failure; returns the attempt number and the wait before the next one. */
  fail(key: string, nowMs = Date.now()): { attempt: number; retryInMs: number } {
    const attempt = (this.failed.get(key)?.count ?? 0) + 1;
    const retryInMs = backoffMs(attempt, this.baseMs, this.capMs);
    this.failed.set(key, { count: attempt, retryAtMs: nowMs + retryInMs });
    return { attempt, retryInMs: Math.round(retryInMs) };
  }

  succeed(key: string): void {
    this.failed.delete(key);
  }
}
