// BullMQ as the lease broker: one queue per model, one job per shard. Jobs are taken on a
// worker's behalf with Worker.getNextJob(token) from a Worker that has no processor; the
// token is the lease id, and the lock lives while the lease extends it. Each replica runs
// the stalled checker of every model queue it knows, so a shard whose lock expired (its
// worker or its replica died) goes back to the queue.
import { createHash } from "node:crypto";
import type { ConnectionOptions as TlsOptions } from "node:tls";
import { Queue, Worker, type Job } from "bullmq";
import type { LeasedShard, ShardJobData } from "../job-store.js";

export interface ShardQueueOptions {
  redisUrl: string;
  prefix: string;
  lockDurationMs: number;
  stalledIntervalMs: number;
  /** Commands of the queue side (enqueue, counts, remove) fail after this long instead of waiting. */
  commandTimeoutMs: number;
  /** TLS options of a rediss:// URL (a CA to trust): every BullMQ connection uses them. */
  tls?: TlsOptions;
}

/** BullMQ queue names may not hold ":"; keep the model readable and make the name unique. */
export function queueNameOf(model: string): string {
  const readable = model.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 64);
  const digest = createHash("sha256").update(model).digest("hex").slice(0, 10);
  return `model-${readable}-${digest}`;
}

/** Job id of a shard: re-adding a shard that is already queued is a no-op. */
export function shardJobId(batchId: string, shard: number): string {
  return `${batchId}.${shard}`;
}

/** Batch priority (higher first, -1000..1000) to BullMQ priority (1 runs first). */
export function bullPriority(priority: number): number {
  const p = Math.max(-1000, Math.min(1000, Math.trunc(priority)));
  return 1001 - p;
}

interface ModelQueue {
  queue: Queue<ShardJobData>;
  worker: Worker<ShardJobData>;
}

export class BullmqShardQueues {
  private readonly models = new Map<string, Promise<ModelQueue>>();
  private readonly expiredHandlers: Array<(jobId: string, model: string) => void> = [];
  private closed = false;

  constructor(private readonly opts: ShardQueueOptions) {}

  private connection(): { url: string; maxRetriesPerRequest: null; tls?: TlsOptions } {
    return { url: this.opts.redisUrl, maxRetriesPerRequest: null, ...(this.opts.tls ? { tls: this.opts.tls } : {}) };
  }

  private open(model: string): Promise<ModelQueue> {
    let q = this.models.get(model);
    if (!q) {
      q = this.create(model);
      this.models.set(model, q);
    }
    return q;
  }

  private async create(model: string): Promise<ModelQueue> {
    const name = queueNameOf(model);
    const common = { connection: this.connection(), prefix: this.opts.prefix };
    const queue = new Queue<ShardJobData>(name, {
      ...common,
      // API paths (enqueue at ingest, counts for /metrics) fail fast with Redis away.
      connection: { ...this.connection(), enableOfflineQueue: false, commandTimeout: this.opts.commandTimeoutMs },
    });
    const worker = new Worker<ShardJobData>(name, null, {
      ...common,
      autorun: false,
      lockDuration: this.opts.lockDurationMs,
      stalledInterval: this.opts.stalledIntervalMs,
      // A shard may stall any number of times (each worker kill is one); it never fails.
      maxStalledCount: Number.MAX_SAFE_INTEGER,
    });
    worker.on("stalled", (jobId) => {
      for (const h of this.expiredHandlers) h(jobId, model);
    });
    // Connection errors are retried by ioredis; keep them from crashing the process.
    worker.on("error", () => undefined);
    queue.on("error", () => undefined);
    await Promise.all([queue.waitUntilReady(), worker.waitUntilReady()]);
    void worker.startStalledCheckTimer();
    return { queue, worker };
  }

  async watch(model: string): Promise<void> {
    await this.open(model);
  }

  onExpired(handler: (jobId: string, model: string) => void): void {
    this.expiredHandlers.push(handler);
  }

  async enqueue(model: string, shards: readonly ShardJobData[], priority: number): Promise<void> {
    const { queue } = await this.open(model);
    const bull = bullPriority(priority);
    const CHUNK = 500;
    for (let i = 0; i < shards.length; i += CHUNK) {
      await queue.addBulk(
        shards.slice(i, i + CHUNK).map((data) => ({
          name: "shard",
          data,
          opts: { jobId: shardJobId(data.batchId, data.shard), priority: bull, removeOnComplete: true, removeOnFail: false },
        })),
      );
    }
  }

  async take(model: string, token: string): Promise<LeasedShard | null> {
    if (this.closed) return null;
    const { worker } = await this.open(model);
    const job = (await worker.getNextJob(token, { block: false })) as Job<ShardJobData> | undefined;
    return job ? new BullmqLeasedShard(job, token) : null;
  }

  async jobData(model: string, jobId: string): Promise<ShardJobData | null> {
    const { queue } = await this.open(model);
    const job = await queue.getJob(jobId);
    return job?.data ?? null;
  }

  async remove(model: string, batchId: string, shards: number): Promise<void> {
    const { queue } = await this.open(model);
    const CHUNK = 100;
    for (let i = 0; i < shards; i += CHUNK) {
      const ids = [];
      for (let s = i; s < Math.min(shards, i + CHUNK); s++) ids.push(shardJobId(batchId, s));
      // A locked (leased) job is not removed (BullMQ refuses: "... locked ..."); its lease
      // completes it. Any other failure (Redis) reaches the caller.
      await Promise.all(
        ids.map((id) =>
          queue.remove(id).catch((err: unknown) => {
            if (!/locked/i.test(String((err as Error | undefined)?.message))) throw err;
            return 0;
          }),
        ),
      );
    }
  }

  /** Shards queued (waiting, prioritized, delayed) and leased (active), per model queue this replica knows. */
  async counts(): Promise<Map<string, { queued: number; leased: number }>> {
    const out = new Map<string, { queued: number; leased: number }>();
    for (const [model, q] of this.models) {
      const { queue } = await q;
      const c = await queue.getJobCounts("waiting", "prioritized", "active", "delayed");
      out.set(model, { queued: (c.waiting ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0), leased: c.active ?? 0 });
    }
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = await Promise.allSettled([...this.models.values()]);
    for (const r of all) {
      if (r.status !== "fulfilled") continue;
      // Shutting down: a connection that fails to close cleanly is dropped with the process.
      await r.value.worker.close(true).catch(() => undefined);
      await r.value.queue.close().catch(() => undefined);
    }
    this.models.clear();
  }
}

class BullmqLeasedShard implements LeasedShard {
  constructor(
    private readonly job: Job<ShardJobData>,
    readonly token: string,
  ) {}

  get data(): ShardJobData {
    return this.job.data;
  }

  async extend(durationMs: number): Promise<boolean> {
    try {
      return (await this.job.extendLock(this.token, durationMs)) === 1;
    } catch {
      // Not extended (the lock is gone, or Redis is away): the caller treats the lease as lost.
      return false;
    }
  }

  async complete(): Promise<boolean> {
    try {
      await this.job.moveToCompleted("done", this.token, false);
      return true;
    } catch {
      // The lock was lost (another lease holds the shard) or Redis is away: the stalled checker decides.
      return false;
    }
  }

  async release(): Promise<boolean> {
    try {
      return (await this.job.moveToWait(this.token)) >= 0;
    } catch {
      // As in complete(): not ours any more, or Redis is away and the lock will expire.
      return false;
    }
  }

  async retryLater(delayMs: number): Promise<boolean> {
    try {
      await this.job.moveToDelayed(Date.now() + Math.max(0, Math.round(delayMs)), this.token);
      return true;
    } catch {
      // As in complete().
      return false;
    }
  }
}
