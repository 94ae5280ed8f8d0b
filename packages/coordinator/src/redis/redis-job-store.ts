// JobStore on Redis: hashes for files and batches, a bitmap of done lines per batch,
// Lua for the steps that must be atomic (lua/*.lua), pub/sub between replicas, and the
// BullMQ shard queues (bullmq-shard-queues.ts). The only module that talks to Redis.
import { randomUUID } from "node:crypto";
import { BatchgenError, TERMINAL_BATCH_STATUSES, type BatchStatus } from "@batchgen/core";
import { Redis } from "ioredis";
import type {
  BatchFields,
  BatchRecord,
  DeleteFileResult,
  FileListQuery,
  FileRecord,
  FleetWorker,
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
import { RedisWebhookOutbox } from "./redis-webhook-outbox.js";

export interface RedisJobStoreOptions {
  redisUrl: string;
  /** Prefix of every key: BullMQ's queues and this store's own keys ("<prefix>:bg:..."). */
  prefix: string;
  lockDurationMs: number;
  stalledIntervalMs: number;
  /** A command that takes longer fails (and callers answer 503); commands fail at once while disconnected. Default 1500. */
  commandTimeoutMs?: number;
  /** PEM of the CA(s) a rediss:// server's certificate must chain to, instead of the system's store. */
  tlsCa?: Buffer;
}

/** What Redis keeps across a restart, from CONFIG GET (or INFO persistence where CONFIG is disabled). */
export interface RedisPersistence {
  aof: boolean;
  /** RDB snapshot rules ("" when none); null when they could not be read. */
  save: string | null;
}

export class RedisJobStore implements JobStore {
  private readonly redis: Redis;
  private subscriber: Redis | null = null;
  private readonly queues: BullmqShardQueues;
  private readonly k: string;

  constructor(opts: RedisJobStoreOptions) {
    // No offline queue and a command timeout: with Redis down or stalled a call fails within
    // commandTimeoutMs instead of waiting for a reconnect (the HTTP API answers 503). rediss://
    // URLs get TLS and user:password@ in the URL gives AUTH (ioredis reads both); the BullMQ
    // connections and the subscriber (a duplicate) get the same TLS options.
    const tls = opts.tlsCa ? { tls: { ca: opts.tlsCa } } : {};
    this.redis = new Redis(opts.redisUrl, {
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      commandTimeout: opts.commandTimeoutMs ?? 1_500,
      ...tls,
    });
    // Connection errors are retried by ioredis and surface on each command; nothing to do here.
    this.redis.on("error", () => undefined);
    defineScripts(this.redis);
    this.k = `${opts.prefix}:bg`;
    this.queues = new BullmqShardQueues({
      redisUrl: opts.redisUrl,
      commandTimeoutMs: opts.commandTimeoutMs ?? 1_500,
      prefix: opts.prefix,
      lockDurationMs: opts.lockDurationMs,
      stalledIntervalMs: opts.stalledIntervalMs,
      ...tls,
    });
  }

  /** The outbox of batch webhook events (the same connection and key prefix). */
  webhookOutbox(): RedisWebhookOutbox {
    return new RedisWebhookOutbox(this.redis, this.key("webhooks"));
  }

  private key(...parts: Array<string | number>): string {
    return [this.k, ...parts].join(":");
  }

  /** Resolves once connected (commands fail fast before that); rejects with "unavailable" after timeoutMs. */
  async connect(timeoutMs = 10_000): Promise<void> {
    if (this.redis.status === "ready") return;
    let last: unknown = null;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: unknown) => {
        last = err;
        // A refused password or an untrusted certificate does not get better by waiting.
        const hopeless = hopelessConnectError(err);
        if (hopeless) done(new BatchgenError("unavailable", hopeless, { cause: err }));
      };
      const done = (err?: unknown) => {
        clearTimeout(timer);
        this.redis.off("ready", onReady);
        this.redis.off("error", onError);
        if (err) reject(err);
        else resolve();
      };
      const onReady = () => done();
      const timer = setTimeout(() => done(unavailable(last ?? new Error(`no connection within ${timeoutMs} ms`))), timeoutMs);
      this.redis.on("ready", onReady);
      this.redis.on("error", onError);
    });
  }

  /** PING within the command timeout. */
  async ping(): Promise<void> {
    await this.redis.ping();
  }

  async persistence(): Promise<RedisPersistence> {
    try {
      const [, aof] = (await this.redis.call("CONFIG", "GET", "appendonly")) as [string, string];
      const [, save] = (await this.redis.call("CONFIG", "GET", "save")) as [string, string];
      return { aof: aof === "yes", save: save ?? "" };
    } catch {
      // Managed Redis often disables CONFIG: INFO still tells whether AOF is on.
      const info = await this.redis.info("persistence");
      return { aof: /^aof_enabled:1\r?$/m.test(info), save: null };
    }
  }

  /** The epoch id of this prefix's state, or null when Redis holds none (fresh, or came back empty). */
  async epoch(): Promise<string | null> {
    return this.redis.get(this.key("epoch"));
  }

  /** Sets the epoch if none is set; returns the epoch in force. */
  async createEpoch(id: string = randomUUID()): Promise<string> {
    await this.redis.set(this.key("epoch"), id, "NX");
    return (await this.redis.get(this.key("epoch"))) ?? id;
  }

  // ---- files

  async createFile(file: FileRecord): Promise<void> {
    const m = this.redis
      .multi()
      .hset(this.key("file", file.id), {
        tenant: file.tenant,
        bytes: String(file.bytes),
        created_at_ms: String(file.createdAtMs),
        filename: file.filename,
        purpose: file.purpose,
        key: file.key,
        ...(file.expiresAtMs === null ? {} : { expires_at_ms: String(file.expiresAtMs) }),
      })
      .zadd(this.key("tenant", file.tenant, "files"), file.createdAtMs, file.id)
      .zadd(this.key("tenant", file.tenant, "files", file.purpose), file.createdAtMs, file.id);
    if (file.expiresAtMs !== null) m.zadd(this.key("file-expiry"), file.expiresAtMs, file.id);
    await m.exec();
  }

  private decodeFile(id: string, h: Record<string, string>): FileRecord | null {
    if (!h.key) return null;
    return {
      id,
      tenant: h.tenant ?? "",
      bytes: Number(h.bytes ?? 0),
      createdAtMs: Number(h.created_at_ms ?? 0),
      filename: h.filename ?? "",
      purpose: h.purpose ?? "",
      key: h.key,
      expiresAtMs: h.expires_at_ms ? Number(h.expires_at_ms) : null,
    };
  }

  async getFile(id: string): Promise<FileRecord | null> {
    return this.decodeFile(id, await this.redis.hgetall(this.key("file", id)));
  }

  async getFiles(ids: readonly string[]): Promise<Array<FileRecord | null>> {
    return (await this.hashes("file", ids)).map((h, i) => this.decodeFile(ids[i]!, h));
  }

  async listFileIds(tenant: string, q: FileListQuery): Promise<{ ids: string[]; hasMore: boolean }> {
    const key = q.purpose === null ? this.key("tenant", tenant, "files") : this.key("tenant", tenant, "files", q.purpose);
    return this.page(key, q.after, q.limit, q.order);
  }

  async deleteFile(id: string, nowMs: number): Promise<DeleteFileResult> {
    const file = await this.getFile(id);
    if (!file) {
      // No record: an expiry entry left for it would be looked at by every sweep.
      await this.redis.zrem(this.key("file-expiry"), id);
      return null;
    }
    const res = (await runScript(
      this.redis,
      "deleteFile",
      [
        this.key("file", id),
        this.key("file", id, "readers"),
        this.key("tenant", file.tenant, "files"),
        this.key("tenant", file.tenant, "files", file.purpose),
        this.key("file-expiry"),
        this.key("trash"),
      ],
      [this.key("batch") + ":", id, nowMs],
    )) as Array<number | string>;
    if (res[0] === -1) return null;
    if (res[0] === 0) return { deleted: false, readBy: String(res[1]) };
    return { deleted: true, trash: res.slice(1).map(String) };
  }

  async expiredFileIds(nowMs: number, limit: number, offset = 0): Promise<string[]> {
    return this.redis.zrangebyscore(this.key("file-expiry"), "-inf", nowMs, "LIMIT", offset, limit);
  }

  async trash(beforeMs: number, limit: number): Promise<string[]> {
    return this.redis.zrangebyscore(this.key("trash"), "-inf", `(${beforeMs}`, "LIMIT", 0, limit);
  }

  async clearTrash(entries: readonly string[]): Promise<void> {
    if (entries.length > 0) await this.redis.zrem(this.key("trash"), ...entries);
  }

  /** Hashes of `kind` ids in one round trip. */
  private async hashes(kind: string, ids: readonly string[]): Promise<Array<Record<string, string>>> {
    if (ids.length === 0) return [];
    const p = this.redis.pipeline();
    for (const id of ids) p.hgetall(this.key(kind, id));
    const res = (await p.exec()) ?? [];
    return ids.map((_, i) => {
      const [err, h] = res[i] ?? [null, {}];
      if (err) throw err;
      return h as Record<string, string>;
    });
  }

  /** A page of a zset ordered by score, after the member `after` (exclusive). */
  private async page(key: string, after: string | null, limit: number, order: "asc" | "desc"): Promise<{ ids: string[]; hasMore: boolean }> {
    let start = 0;
    if (after) {
      const rank = order === "desc" ? await this.redis.zrevrank(key, after) : await this.redis.zrank(key, after);
      if (rank === null) return { ids: [], hasMore: false };
      start = rank + 1;
    }
    const ids =
      order === "desc"
        ? await this.redis.zrevrange(key, start, start + limit)
        : await this.redis.zrange(key, String(start), String(start + limit));
    return { ids: ids.slice(0, limit), hasMore: ids.length > limit };
  }

  // ---- batches

  async createBatch(batch: BatchRecord): Promise<boolean> {
    const { id, status, ...fields } = batch;
    const pairs = encodeBatchFields(fields).filter(([, v]) => v !== "");
    const res = await runScript(
      this.redis,
      "createBatch",
      [
        this.key("file", batch.inputFileId),
        this.key("file", batch.inputFileId, "readers"),
        this.key("batch", id),
        this.key("tenant", batch.tenant, "batches"),
        this.key("active"),
        this.key("status-counts"),
      ],
      [id, batch.createdAtMs, status, ...pairs.flat()],
    );
    return res === 1;
  }

  async getBatch(id: string): Promise<BatchRecord | null> {
    return decodeBatch(id, await this.redis.hgetall(this.key("batch", id)));
  }

  async getBatches(ids: readonly string[]): Promise<Array<BatchRecord | null>> {
    return (await this.hashes("batch", ids)).map((h, i) => decodeBatch(ids[i]!, h));
  }

  async listBatchIds(tenant: string, after: string | null, limit: number): Promise<{ ids: string[]; hasMore: boolean }> {
    return this.page(this.key("tenant", tenant, "batches"), after, limit, "desc");
  }

  async transitionBatch(id: string, from: readonly BatchStatus[], to: BatchStatus, fields: BatchFields = {}): Promise<boolean> {
    const terminal = TERMINAL_BATCH_STATUSES.includes(to) ? "1" : "0";
    const pairs = encodeBatchFields(fields).flat();
    const res = await runScript(
      this.redis,
      "transitionBatch",
      [this.key("batch", id), this.key("status-counts"), this.key("active"), this.key("webhooks", "due")],
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
    await this.redis.del(
      this.key("batch", batchId, "done"),
      this.key("batch", batchId, "shard-done"),
      this.key("batch", batchId, "leases"),
      this.key("batch", batchId, "shard-failures"),
      this.key("batch", batchId, "parked"),
    );
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

  // ---- failing shards

  async recordShardFailure(batchId: string, shard: number, reason: string): Promise<number> {
    return Number(await runScript(this.redis, "recordShardFailure", [this.key("batch", batchId, "shard-failures")], [shard, reason]));
  }

  async clearShardFailure(batchId: string, shard: number): Promise<void> {
    await this.redis.hdel(this.key("batch", batchId, "shard-failures"), String(shard));
  }

  async parkShard(batchId: string, shard: number, message: string): Promise<boolean> {
    return (await this.redis.hsetnx(this.key("batch", batchId, "parked"), String(shard), message)) === 1;
  }

  async parkedShards(batchId: string): Promise<Map<number, string>> {
    const h = await this.redis.hgetall(this.key("batch", batchId, "parked"));
    return new Map(Object.entries(h).map(([k, v]) => [Number(k), v]));
  }

  shardJobData(model: string, jobId: string): Promise<ShardJobData | null> {
    return this.queues.jobData(model, jobId);
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

  async registerModel(model: string, maxModelLen: number, ttlMs: number, adapters: readonly string[] = []): Promise<void> {
    const until = Date.now() + ttlMs;
    const m = this.redis
      .multi()
      // GT still adds a new member; it only keeps an existing one from moving back.
      .zadd(this.key("models"), "GT", until, model)
      .hset(this.key("model-len"), model, String(maxModelLen))
      .hdel(this.key("model-base"), model)
      .sadd(this.key("queues"), model);
    // An adapter is served under its own name and queued under its base's.
    for (const a of adapters) {
      m.zadd(this.key("models"), "GT", until, a).hset(this.key("model-len"), a, String(maxModelLen)).hset(this.key("model-base"), a, model);
    }
    await m.exec();
  }

  async servedModels(nowMs: number): Promise<Map<string, { maxModelLen: number; base?: string }>> {
    const models = await this.redis.zrangebyscore(this.key("models"), nowMs, "+inf");
    const out = new Map<string, { maxModelLen: number; base?: string }>();
    if (models.length === 0) return out;
    const [lens, bases] = await Promise.all([this.redis.hmget(this.key("model-len"), ...models), this.redis.hmget(this.key("model-base"), ...models)]);
    models.forEach((m, i) => out.set(m, { maxModelLen: Number(lens[i] ?? 0), ...(bases[i] ? { base: bases[i] } : {}) }));
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
      // Subscriptions wait for a reconnect (and resubscribe) rather than fail fast.
      this.subscriber = this.redis.duplicate({ enableOfflineQueue: true, lazyConnect: false, maxRetriesPerRequest: null });
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

  shardCounts(): Promise<Map<string, { queued: number; leased: number }>> {
    return this.queues.counts();
  }

  onLeaseExpired(handler: (jobId: string, model: string) => void): void {
    this.queues.onExpired(handler);
  }

  // ---- fleet: one hash field per worker session, JSON with its expiry

  async putWorker(worker: FleetWorker, ttlMs: number): Promise<void> {
    await this.redis.hset(this.key("fleet"), worker.sessionId, JSON.stringify({ ...worker, expiresAtMs: Date.now() + ttlMs }));
  }

  async removeWorker(sessionId: string): Promise<void> {
    await this.redis.hdel(this.key("fleet"), sessionId);
  }

  async fleet(nowMs: number): Promise<FleetWorker[]> {
    const all = await this.redis.hgetall(this.key("fleet"));
    const out: FleetWorker[] = [];
    const gone: string[] = [];
    for (const [session, json] of Object.entries(all)) {
      const { expiresAtMs, ...w } = JSON.parse(json) as FleetWorker & { expiresAtMs: number };
      if (expiresAtMs < nowMs) gone.push(session);
      else out.push(w);
    }
    // A replica that died left its sessions behind: forget them once they expired.
    if (gone.length > 0) await this.redis.hdel(this.key("fleet"), ...gone);
    return out.sort((a, b) => a.workerId.localeCompare(b.workerId));
  }

  async close(): Promise<void> {
    await this.queues.close();
    this.subscriber?.disconnect();
    this.redis.disconnect();
  }
}

/** A Redis failure as the API reports it: 503, with the driver's words kept as the cause. */
/** Node's codes for a server certificate that does not verify. */
const UNTRUSTED_CERT_CODES = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** What to tell an operator about a connection error that retrying cannot fix; null for one it may. */
function hopelessConnectError(err: unknown): string | null {
  const { message, code } = (err ?? {}) as { message?: unknown; code?: unknown };
  const text = String(message ?? err);
  if (/WRONGPASS|NOAUTH|invalid password|invalid username/i.test(text)) return `Redis refused the credentials in the Redis URL: ${text}`;
  if (typeof code === "string" && UNTRUSTED_CERT_CODES.has(code)) {
    return `Redis's TLS certificate is not trusted (${text}): give the CA that signed it with --redis-tls-ca-file, and check the host name in the Redis URL`;
  }
  return null;
}

function unavailable(err: unknown): BatchgenError {
  if (err instanceof BatchgenError) return err;
  return new BatchgenError("unavailable", "Redis is unavailable; please retry shortly.", { cause: err });
}

/**
 * Every JobStore call of this store answers a Redis connection failure or timeout as
 * BatchgenError("unavailable") (HTTP 503); errors Redis itself replied with (a bug)
 * stay internal.
 */
for (const name of Object.getOwnPropertyNames(RedisJobStore.prototype)) {
  if (name === "constructor" || name === "key" || name === "close") continue;
  const descriptor = Object.getOwnPropertyDescriptor(RedisJobStore.prototype, name);
  const fn = descriptor?.value as unknown;
  if (typeof fn !== "function") continue;
  Object.defineProperty(RedisJobStore.prototype, name, {
    ...descriptor,
    value: function (this: RedisJobStore, ...args: unknown[]) {
      let out: unknown;
      try {
        out = (fn as (...a: unknown[]) => unknown).apply(this, args);
      } catch (err) {
        throw isReplyError(err) ? err : unavailable(err);
      }
      if (out instanceof Promise) return out.catch((err: unknown) => Promise.reject(isReplyError(err) ? err : unavailable(err)));
      return out;
    },
  });
}

function isReplyError(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { name?: unknown }).name === "ReplyError";
}
