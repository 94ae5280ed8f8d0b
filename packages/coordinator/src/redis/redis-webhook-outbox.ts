// The webhook outbox on Redis: a sorted set of batch ids by the time their event is due
// (<prefix>:bg:webhooks:due, filled by lua/transition-batch.lua) and one hash per
// delivery record (<prefix>:bg:webhooks:<batch id>), kept 7 days after it is done.
import type { Redis } from "ioredis";
import type { WebhookDelivery, WebhookOutbox, WebhookStatus } from "../webhooks/webhook-outbox.js";
import { runScript } from "./lua-scripts.js";

const KEEP_DONE_SECONDS = 7 * 24 * 3600;

export class RedisWebhookOutbox implements WebhookOutbox {
  constructor(
    private readonly redis: Redis,
    private readonly k: string,
  ) {}

  async claimDue(nowMs: number, claimMs: number, limit: number): Promise<string[]> {
    return (await runScript(this.redis, "claimWebhooks", [`${this.k}:due`], [nowMs, claimMs, limit])) as string[];
  }

  async get(batchId: string): Promise<WebhookDelivery | null> {
    const h = await this.redis.hgetall(`${this.k}:${batchId}`);
    if (!h.status) return null;
    const num = (v: string | undefined) => (v === undefined || v === "" ? null : Number(v));
    return {
      status: h.status as WebhookStatus,
      attempts: Number(h.attempts ?? 0),
      lastError: h.last_error || null,
      lastAttemptAtMs: num(h.last_attempt_at_ms),
      deliveredAtMs: num(h.delivered_at_ms),
    };
  }

  async record(batchId: string, d: WebhookDelivery, nextAtMs: number | null): Promise<void> {
    const key = `${this.k}:${batchId}`;
    const m = this.redis.multi().hset(key, {
      status: d.status,
      attempts: String(d.attempts),
      last_error: d.lastError ?? "",
      last_attempt_at_ms: d.lastAttemptAtMs === null ? "" : String(d.lastAttemptAtMs),
      delivered_at_ms: d.deliveredAtMs === null ? "" : String(d.deliveredAtMs),
    });
    if (nextAtMs === null) m.zrem(`${this.k}:due`, batchId).expire(key, KEEP_DONE_SECONDS);
    else m.zadd(`${this.k}:due`, "XX", nextAtMs, batchId);
    await m.exec();
  }
}
