// JobStore on Redis: hashes for files and batches, a bitmap of done lines per batch,
// Lua for the steps that must be atomic (lua/*.lua), pub/sub between replicas, and the
// BullMQ shard queues (bullmq-shard-queues.ts). The only module that talks to Redis.
import { TERMINAL_BATCH_STATUSES, type BatchStatus } from "@batchgen/core";
import { Redis } from "ioredis";
import type {
  BatchFields,
  BatchRecord,
  FileRecord,
  JobStore,
  LeasedShard,
  LineOutcome,
  MarkResult,
  ShardJobData,
  StoreEvent,
} from "../job-store.js";
import { decodeBatch, encodeBatchFields } from "./batch-codec.js";
import { BullmqShardQueues } from "./bullmq-shard-queues.js";
import { defineScripts, runScript } from "./lua-scripts.js";

export interface RedisJobStoreOptions {
  redisUrl: string;
  /** Prefix of every key: BullMQ's queues and this store's own keys ("<prefix>:bg:..."). */
  prefix: string;
  lockDurationMs: number;
  stalledIntervalMs: number;
}

export class RedisJobStore implements JobStore {
  private readonly redis: Redis;
  private subscriber: Redis | null = null;
  private readonly queues: BullmqShardQueues;
  private readonly k: string;

  constructor(opts: RedisJobStoreOptions) {
    this.redis = new Redis(opts.redisUrl, { maxRetriesPerRequest: null, lazyConnect: false });
    this.redis.on("error", () => undefined);
    defineScripts(this.redis);
    this.k = `${opts.prefix}:bg`;
    this.queues = new BullmqShardQueues({
      redisUrl: opts.redisUrl,
      prefix: opts.prefix,
      lockDurationMs: opts.lockDurationMs,
      stalledIntervalMs: opts.stalledIntervalMs,
    });
  }

  private key(...parts: Array<string | number>): string {
    return [this.k, ...parts].join(":");
  }

  // ---- files

  async createFile(file: FileRecord): Promise<void> {
    await this.redis.hset(this.key("file", file.id), {
      tenant: file.tenant,
      bytes: String(file.bytes),
      created_at_ms: String(file.createdAtMs),
      filename: file.filename,
      purpose: file.purpose,
      key: file.key,
    });
  }

  async getFile(id: string): Promise<FileRecord | null> {
    const h = await this.redis.hgetall(this.key("file", id));
    if (!h.key) return null;
    return {
      id,
      tenant: h.tenant ?? "",
      bytes: Number(h.bytes ?? 0),
      createdAtMs: Number(h.created_at_ms ?? 0),
      filename: h.filename ?? "",
      purpose: h.purpose ?? "",
      key: h.key,
    };
  }

  // ---- batches

  async createBatch(batch: BatchRecord): Promise<void> {
    const { id, status, ...fields } = batch;
    const pairs = encodeBatchFields(fields).filter(([, v]) => v !== "");
    await this.redis
      .multi()
      .hset(this.key("batch", id), "status", status, ...pairs.flat())
      .zadd(this.key("tenant", batch.tenant, "batches"), batch.createdAtMs, id)
      .sadd(this.key("active"), id)
      .hincrby(this.key("status-counts"), status, 1)
      .exec();
  }

  async getBatch(id: string): Promise<BatchRecord | null> {
    return decodeBatch(id, await this.redis.hgetall(this.key("batch", id)));
  }

  async getBatches(ids: readonly string[]): Promise<Array<BatchRecord | null>> {
    if (ids.length === 0) return [];
    const p = this.redis.pipeline();
    for (const id of ids) p.hgetall(this.key("batch", id));
    const res = (await p.exec()) ?? [];
    return ids.map((id, i) => {
      const [err, h] = res[i] ?? [null, {}];
      if (err) throw err;
      return decodeBatch(id, h as Record<string, string>);
    });
  }

  async listBatchIds(tenant: string, after: string | null, limit: number): Promise<{ ids: string[]; hasMore: boolean }> {
    const key = this.key("tenant", tenant, "batches");
    let start = 0;
    if (after) {
      const rank = await this.redis.zrevrank(key, after);
      if (rank === null) return { ids: [], hasMore: false };
      start = rank + 1;
    }
    const ids = await this.redis.zrevrange(key, start, start + limit);
    return { ids: ids.slice(0, limit), hasMore: ids.length > limit };
  }

  async transitionBatch(id: string, from: readonly BatchStatus[], to: BatchStatus, fields: BatchFields = {}): Promise<boolean> {
    const terminal = TERMINAL_BATCH_STATUSES.includes(to) ? "1" : "0";
    const pairs = encodeBatchFields(fields).flat();
    const res = await runScript(
      this.redis,
      "transitionBatch",
      [this.key("batch", id), this.key("status-counts"), this.key("active")],
      [id, from.join(","), to, terminal, ...pairs],
    );
    return res === 1;
  }

  async updateBatch(id: string, fields: BatchFields): Promise<void> {
    const pairs = encodeBatchFields(fields);
    const set = pairs.filter(([, v]) => v !== "");
    const del = pairs.filter(([, v]) => v === "").map(([f]) => f);
    const m = this.redis.multi();
    if (set.length) m.hset(this.key("batch", id), ...set.flat());
    if (del.length) m.hdel(this.key("batch", id), ...del);
    await m.exec();
  }

  async activeBatchIds(): Promise<string[]> {
    return this.redis.smembers(this.key("active"));
  }

  async statusCounts(): Promise<Partial<Record<BatchStatus, number>>> {
    const h = await this.redis.hgetall(this.key("status-counts"));
    const out: Partial<Record<BatchStatus, number>> = {};
    for (const [s, n] of Object.entries(h)) out[s as BatchStatus] = Number(n);
    return out;
  }

  async reserveResultFileIds(batchId: string, ids: { output: string; error: string }): Promise<{ output: string; error: string }> {
    const key = this.key("batch", batchId);
    const [, , got] = (await this.redis
      .multi()
      .hsetnx(key, "reserved_output_file_id", ids.output)
      .hsetnx(key, "reserved_error_file_id", ids.error)
      .hmget(key, "reserved_output_file_id", "reserved_error_file_id")
      .exec()) as [unknown, unknown, [Error | null, [string, string]]];
    const [output, error] = got[1];
    return { output, error };
  }

  async dropLineState(batchId: string): Promise<void> {
    await this.redis.del(this.key("batch", batchId, "done"), this.key("batch", batchId, "shard-done"), this.key("batch", batchId, "leases"));
  }

  // ---- lines

  async markLinesDone(batchId: string, shard: number, outcomes: readonly LineOutcome[]): Promise<MarkResult> {
    const args: Array<string | number> = [shard];
    for (const o of outcomes) args.push(o.line, o.ok ? 1 : 0, o.promptTokens, o.completionTokens, o.cachedTokens ?? 0);
    const [newlyDone, batchDone, shardDone, newlyOk, newPromptTokens, newCompletionTokens, newCachedTokens] = (await runScript(
      this.redis,
      "markLinesDone",
      [this.key("batch", batchId, "done"), this.key("batch", batchId, "shard-done"), this.key("batch", batchId)],
      args,
    )) as number[];
    return {
      newlyDone: newlyDone ?? 0,
      batchDone: batchDone ?? 0,
      shardDone: shardDone ?? 0,
      newlyOk: newlyOk ?? 0,
      newPromptTokens: newPromptTokens ?? 0,
      newCompletionTokens: newCompletionTokens ?? 0,
      newCachedTokens: newCachedTokens ?? 0,
    };
  }

  async doneLines(batchId: string, firstLine: number, count: number): Promise<boolean[]> {
    const out = new Array<boolean>(count).fill(false);
    if (count === 0) return out;
    const firstByte = Math.floor(firstLine / 8);
    const lastByte = Math.floor((firstLine + count - 1) / 8);
    const bytes = await this.redis.getrangeBuffer(this.key("batch", batchId, "done"), firstByte, lastByte);
    for (let i = 0; i < count; i++) {
      const bit = firstLine + i;
      const byte = bytes[Math.floor(bit / 8) - firstByte];
      // Redis bit 0 is the most significant bit of byte 0.
      out[i] = byte !== undefined && (byte & (0x80 >> bit % 8)) !== 0;
    }
    return out;
  }

  // ---- leases

  async putLease(batchId: string, leaseId: string, expiresAtMs: number): Promise<void> {
    await this.redis.hset(this.key("batch", batchId, "leases"), leaseId, String(expiresAtMs));
  }

  async removeLease(batchId: string, leaseId: string): Promise<void> {
    await this.redis.hdel(this.key("batch", batchId, "leases"), leaseId);
  }

  async liveLeases(batchId: string, nowMs: number): Promise<number> {
    const h = await this.redis.hgetall(this.key("batch", batchId, "leases"));
    return Object.values(h).filter((v) => Number(v) > nowMs).length;
  }

  // ---- models

  async registerModel(model: string, maxModelLen: number, ttlMs: number): Promise<void> {
    await this.redis
      .multi()
      // GT still adds a new member; it only keeps an existing one from moving back.
      .zadd(this.key("models"), "GT", Date.now() + ttlMs, model)
      .hset(this.key("model-len"), model, String(maxModelLen))
      .sadd(this.key("queues"), model)
      .exec();
  }

  async servedModels(nowMs: number): Promise<Map<string, { maxModelLen: number }>> {
    const models = await this.redis.zrangebyscore(this.key("models"), nowMs, "+inf");
    const out = new Map<string, { maxModelLen: number }>();
    if (models.length === 0) return out;
    const lens = await this.redis.hmget(this.key("model-len"), ...models);
    models.forEach((m, i) => out.set(m, { maxModelLen: Number(lens[i] ?? 0) }));
    return out;
  }

  // ---- locks

  async tryLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(this.key("lock", name), owner, "PX", ttlMs, "NX")) === "OK";
  }

  async renewLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await runScript(this.redis, "renewLock", [this.key("lock", name)], [owner, ttlMs])) === 1;
  }

  async releaseLock(name: string, owner: string): Promise<void> {
    await runScript(this.redis, "releaseLock", [this.key("lock", name)], [owner]);
  }

  async lockHeld(name: string): Promise<boolean> {
    return (await this.redis.exists(this.key("lock", name))) === 1;
  }

  // ---- events

  async publish(event: StoreEvent): Promise<void> {
    await this.redis.publish(this.key("events"), JSON.stringify(event));
  }

  async subscribe(handler: (event: StoreEvent) => void): Promise<void> {
    if (!this.subscriber) {
      this.subscriber = this.redis.duplicate();
      this.subscriber.on("error", () => undefined);
      this.subscriber.on("message", (_channel: string, text: string) => {
        try {
          handler(JSON.parse(text) as StoreEvent);
        } catch {
          // a malformed event is dropped; the monitor loop covers anything missed
        }
      });
    }
    await this.subscriber.subscribe(this.key("events"));
  }

  // ---- shard queues

  async enqueueShards(model: string, shards: readonly ShardJobData[], priority: number): Promise<void> {
    await this.redis.sadd(this.key("queues"), model);
    await this.queues.enqueue(model, shards, priority);
  }

  takeShard(model: string, token: string): Promise<LeasedShard | null> {
    return this.queues.take(model, token);
  }

  removeShards(model: string, batchId: string, shards: number): Promise<void> {
    return this.queues.remove(model, batchId, shards);
  }

  async watchModel(model: string): Promise<void> {
    await this.queues.watch(model);
  }

  /** Start the stalled checkers of every model queue any replica ever used. */
  async watchKnownModels(): Promise<void> {
    for (const model of await this.redis.smembers(this.key("queues"))) await this.queues.watch(model);
  }

  shardCounts(): Promise<{ queued: number; leased: number }> {
    return this.queues.counts();
  }

  onLeaseExpired(handler: (jobId: string) => void): void {
    this.queues.onExpired(handler);
  }

  async close(): Promise<void> {
    await this.queues.close();
    this.subscriber?.disconnect();
    this.redis.disconnect();
  }
}
