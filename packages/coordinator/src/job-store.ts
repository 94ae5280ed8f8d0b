// Everything the coordinator keeps outside object storage, behind one interface. The only
// implementation is redis/redis-job-store.ts (Redis + BullMQ); nothing else in the
// coordinator imports ioredis or bullmq.
import type { BatchError, BatchStatus } from "@batchgen/core";

export interface FileRecord {
  id: string;
  tenant: string;
  bytes: number;
  createdAtMs: number;
  filename: string;
  purpose: string;
  /** Where the bytes are in object storage. */
  key: string;
  /** When the janitor deletes the file (its `expires_after`); null: kept until deleted. */
  expiresAtMs: number | null;
}

export interface FileListQuery {
  purpose: string | null;
  /** A file id: list the files after it in this order (exclusive). */
  after: string | null;
  limit: number;
  order: "asc" | "desc";
}

export type DeleteFileResult =
  | { deleted: true; /** Objects (keys, "prefix/" folders) now in the trash, to delete from storage. */ trash: string[] }
  | { deleted: false; /** A batch not yet final that reads the file. */ readBy: string }
  | null;

export type StopReason = "cancelled" | "expired";

export interface BatchRecord {
  id: string;
  tenant: string;
  status: BatchStatus;
  endpoint: string;
  inputFileId: string;
  inputKey: string;
  completionWindow: string;
  metadata: Record<string, string> | null;
  /** Extension: higher runs first (BullMQ job priority of its shards). */
  priority: number;
  createdAtMs: number;
  expiresAtMs: number;
  inProgressAtMs: number | null;
  finalizingAtMs: number | null;
  completedAtMs: number | null;
  failedAtMs: number | null;
  expiredAtMs: number | null;
  cancellingAtMs: number | null;
  cancelledAtMs: number | null;
  outputFileId: string | null;
  errorFileId: string | null;
  errors: BatchError[] | null;
  /** Known once ingest has read the file. */
  model: string | null;
  /** LoRA adapters of `model` the lines name (known once ingest has read the file). */
  adapters: string[] | null;
  total: number;
  shards: number;
  shardLines: number;
  /** `output_expires_after.seconds`: output and error files expire this long after they are made. */
  outputExpiresAfterS: number | null;
  /** Lines persisted with a response / with a line error (exact once final). */
  completed: number;
  failed: number;
  promptTokens: number;
  completionTokens: number;
  /** Of promptTokens: served from the engines' prefix caches (the rest were computed). */
  promptTokensCached: number;
  /** Set when a cancel or the completion window stops the batch. */
  stopReason: StopReason | null;
}

/** A run of consecutive request lines: [firstLine, lineCount, byteStart, byteEnd). */
export type LineRun = [number, number, number, number];

/**
 * One shard as a BullMQ job's data: lines [firstLine, firstLine + lineCount) at bytes
 * [byteStart, byteEnd) of the input file, or, when `runs` is set (prefix packing),
 * those runs of consecutive lines (firstLine, lineCount and the bytes are then the
 * first line, the number of lines and the byte envelope). shard-lines.ts reads both.
 */
export interface ShardJobData {
  batchId: string;
  shard: number;
  firstLine: number;
  lineCount: number;
  byteStart: number;
  byteEnd: number;
  inputKey: string;
  endpoint: string;
  priority: number;
  /** [firstLine, lineCount, byteStart, byteEnd] per run, in line order; absent = one run. */
  runs?: LineRun[];
  /** The prefix key most of its lines share (the lease broker's affinity hint). */
  prefixKey?: string;
  /** LoRA adapters its lines name (the lease broker prefers workers that hold them). */
  adapters?: string[];
}

/** A shard taken from its model's queue with a lock token; the lock lives while extended. */
export interface LeasedShard {
  readonly data: ShardJobData;
  readonly token: string;
  /** False when the lock was lost (it expired and the shard may be leased elsewhere). */
  extend(durationMs: number): Promise<boolean>;
  /** Finish the job; false when the lock was lost. */
  complete(): Promise<boolean>;
  /** Put the job back in its queue now; false when the lock was lost. */
  release(): Promise<boolean>;
  /** Put the job back to run again after delayMs (a failure backing off); false when the lock was lost. */
  retryLater(delayMs: number): Promise<boolean>;
}

export interface LineOutcome {
  line: number;
  ok: boolean;
  promptTokens: number;
  completionTokens: number;
  /** Of promptTokens, served from the engine's prefix cache (0 when not reported). */
  cachedTokens?: number;
}

export interface MarkResult {
  /** Lines newly marked done by this call (the rest were done before); -1: the batch is final, nothing marked. */
  newlyDone: number;
  /** Lines of the batch done so far. */
  batchDone: number;
  /** Lines of this shard done so far. */
  shardDone: number;
  /** Of the newly done lines: how many have a response, and their tokens. */
  newlyOk: number;
  newPromptTokens: number;
  newCompletionTokens: number;
  newCachedTokens: number;
}

export type StoreEvent =
  | { type: "cancel"; batchId: string; reason: StopReason }
  /** Shards were queued (or put back) for this model. */
  | { type: "work"; model: string };

/** One connected worker as its session last reported it (Hello + heartbeats), for the fleet view. */
export interface FleetWorker {
  sessionId: string;
  workerId: string;
  model: string;
  /** The engine string of its Hello: version, device and card. */
  engine: string;
  tokensPerSecond: number;
  running: number;
  waiting: number;
  kvBlocksUsed: number;
  kvBlocksTotal: number;
  /** LoRA adapters it serves (its Hello), and those its engine holds in a slot now (heartbeats). */
  adapters: string[];
  adaptersLoaded: string[];
  leases: number;
  connectedAtMs: number;
  lastHeartbeatAtMs: number;
}

export type BatchFields = Partial<Omit<BatchRecord, "id" | "status">>;

export interface JobStore {
  // Files
  createFile(file: FileRecord): Promise<void>;
  getFile(id: string): Promise<FileRecord | null>;
  getFiles(ids: readonly string[]): Promise<Array<FileRecord | null>>;
  /** A tenant's file ids by creation time, optionally of one purpose. */
  listFileIds(tenant: string, query: FileListQuery): Promise<{ ids: string[]; hasMore: boolean }>;
  /**
   * Delete the file's record unless a batch not yet final reads it (createBatch records
   * readers); its object and the storage of the batches that read it go to the trash.
   * null: no such file.
   */
  deleteFile(id: string, nowMs: number): Promise<DeleteFileResult>;
  /** Ids of files whose expiry is at or before nowMs, oldest first, from the `offset`-th on. */
  expiredFileIds(nowMs: number, limit: number, offset?: number): Promise<string[]>;
  /** Trash entries put there before `beforeMs` (object keys, or folders ending in "/"). */
  trash(beforeMs: number, limit: number): Promise<string[]>;
  /** Forget trash entries whose objects are gone from storage. */
  clearTrash(entries: readonly string[]): Promise<void>;

  // Batches
  /** Create the batch as a reader of its input file; false (nothing created) when that file is gone. */
  createBatch(batch: BatchRecord): Promise<boolean>;
  getBatch(id: string): Promise<BatchRecord | null>;
  getBatches(ids: readonly string[]): Promise<Array<BatchRecord | null>>;
  /** A tenant's batch ids, newest first, after the batch `after` (exclusive). */
  listBatchIds(tenant: string, after: string | null, limit: number): Promise<{ ids: string[]; hasMore: boolean }>;
  /** Set the status (and fields) only if the current status is one of `from`; false otherwise. */
  transitionBatch(id: string, from: readonly BatchStatus[], to: BatchStatus, fields?: BatchFields): Promise<boolean>;
  updateBatch(id: string, fields: BatchFields): Promise<void>;
  /** Batches not yet in a terminal status. */
  activeBatchIds(): Promise<string[]>;
  statusCounts(): Promise<Partial<Record<BatchStatus, number>>>;
  /** Output and error file ids for a batch, reserved once (a retried finalize reuses them). */
  reserveResultFileIds(batchId: string, ids: { output: string; error: string }): Promise<{ output: string; error: string }>;
  /** Drop per-line bookkeeping of a finished batch. */
  dropLineState(batchId: string): Promise<void>;

  // Lines done (idempotent by batch and line index: the first mark wins)
  markLinesDone(batchId: string, shard: number, outcomes: readonly LineOutcome[]): Promise<MarkResult>;
  /** Which of lines [firstLine, firstLine + count) are done, as a bit per line. */
  doneLines(batchId: string, firstLine: number, count: number): Promise<boolean[]>;

  // Shards that keep failing (lease_expired, worker_lost, results_not_stored): counted, then parked
  /** Count a failed lease of the shard; returns the consecutive failures for this reason. */
  recordShardFailure(batchId: string, shard: number, reason: string): Promise<number>;
  /** A lease of the shard made progress: its failures start again from zero. */
  clearShardFailure(batchId: string, shard: number): Promise<void>;
  /** Record why a shard was parked (its lines not done are marked as failed by the caller); false if it already was. */
  parkShard(batchId: string, shard: number, message: string): Promise<boolean>;
  /** Parked shards of a batch: shard -> the message its lines' errors carry. */
  parkedShards(batchId: string): Promise<Map<number, string>>;
  /** The data of a shard's job (for a shard whose lease expired: only its job id is known). */
  shardJobData(model: string, jobId: string): Promise<ShardJobData | null>;

  // Leases of a batch held by workers (for cancel/expire: wait until they stop)
  putLease(batchId: string, leaseId: string, expiresAtMs: number): Promise<void>;
  removeLease(batchId: string, leaseId: string): Promise<void>;
  liveLeases(batchId: string, nowMs: number): Promise<number>;

  // Models served by connected workers
  /** A model a worker serves, with the LoRA adapters it serves on it (names that map to `model`). */
  registerModel(model: string, maxModelLen: number, ttlMs: number, adapters?: readonly string[]): Promise<void>;
  /** Served names: base models, and adapters with the base they run on. */
  servedModels(nowMs: number): Promise<Map<string, { maxModelLen: number; base?: string }>>;

  // The fleet (workers connected to any replica, from their sessions' heartbeats)
  /** Record a session's worker; it drops out of fleet() after ttlMs without another put. */
  putWorker(worker: FleetWorker, ttlMs: number): Promise<void>;
  removeWorker(sessionId: string): Promise<void>;
  fleet(nowMs: number): Promise<FleetWorker[]>;

  // Locks (one owner at a time, with a time to live)
  tryLock(name: string, owner: string, ttlMs: number): Promise<boolean>;
  renewLock(name: string, owner: string, ttlMs: number): Promise<boolean>;
  releaseLock(name: string, owner: string): Promise<void>;
  lockHeld(name: string): Promise<boolean>;

  // Events between replicas
  publish(event: StoreEvent): Promise<void>;
  subscribe(handler: (event: StoreEvent) => void): Promise<void>;

  // Shard queues (BullMQ as the lease broker: one queue per model, one job per shard)
  enqueueShards(model: string, shards: readonly ShardJobData[], priority: number): Promise<void>;
  /** Take the next queued shard of a model for a lease with this token, or null if none. */
  takeShard(model: string, token: string): Promise<LeasedShard | null>;
  /** Remove a batch's shards still queued (leased ones finish through their lease). */
  removeShards(model: string, batchId: string, shards: number): Promise<void>;
  /** Run this model queue's stalled checker here (idempotent). */
  watchModel(model: string): Promise<void>;
  /** watchModel for every model queue any replica ever used. */
  watchKnownModels(): Promise<void>;
  /** Shards queued (waiting for a worker) and leased (held by one), per model. */
  shardCounts(): Promise<Map<string, { queued: number; leased: number }>>;
  /** Called when a stalled checker put a shard whose lock expired back in its queue. */
  onLeaseExpired(handler: (jobId: string, model: string) => void): void;

  close(): Promise<void>;
}
