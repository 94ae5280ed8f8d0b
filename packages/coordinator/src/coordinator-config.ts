// The coordinator's settings: one zod schema, validated once at start-up. Every key maps
// to an environment variable BATCHGEN_<SNAKE_CASE> and a flag --<kebab-case> (core's
// loadConfig); `node dist/main.js --help` lists them.
import { BatchgenError, loadConfig } from "@batchgen/core";
import { z } from "zod";
import { webhookSecretKey } from "./webhooks/webhook-signature.js";

const port = z.number().int().min(0).max(65535);
const positiveInt = z.number().int().positive();

const apiKeyObject = z.object({ key: z.string().min(1), tenant: z.string().min(1) });

/** "key:tenant" pairs (or already-parsed objects); a key without ":tenant" belongs to "default". */
export const apiKeyEntry = z.union([
  apiKeyObject,
  z
    .string()
    .min(1)
    .transform((entry, ctx) => {
      const at = entry.lastIndexOf(":");
      const key = (at < 0 ? entry : entry.slice(0, at)).trim();
      const tenant = (at < 0 ? "default" : entry.slice(at + 1)).trim();
      if (key === "" || tenant === "") {
        ctx.addIssue({ code: "custom", message: `expected "key:tenant", got ${JSON.stringify(entry)}` });
        return z.NEVER;
      }
      return { key, tenant };
    }),
]);

const webhookObject = z.object({ tenant: z.string().min(1), secret: z.string(), url: z.string().url() });

/** "tenant:whsec_...:https://receiver/path" (or already-parsed objects): where a tenant's batch events go. */
export const webhookEntry = z
  .union([webhookObject, z.string()])
  .transform((entry, ctx) => {
    if (typeof entry !== "string") return entry;
    const m = /^([^:]+):(whsec_[^:]*):(https?:\/\/.+)$/.exec(entry.trim());
    if (!m) {
      const shown = JSON.stringify(entry.replace(/whsec_[^:]*/, "whsec_***"));
      ctx.addIssue({ code: "custom", message: `expected "tenant:whsec_...:https://host/path", got ${shown}` });
      return z.NEVER;
    }
    return { tenant: m[1]!.trim(), secret: m[2]!, url: m[3]! };
  })
  .pipe(webhookObject)
  .refine((w) => webhookSecretKey(w.secret) !== null, {
    message: 'a webhook secret is "whsec_" and the base64 of at least 16 random bytes',
  });
/** A list of secrets: an array, or one string with comma-separated entries (env and flags). */
const secretList = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (Array.isArray(v) ? v : v.split(",")).map((t) => t.trim()).filter((t) => t !== ""));

const completionWindow = z.string().regex(/^\d+[smhd]$/, 'a window is a number and a unit, e.g. "24h", "90m"');

export const coordinatorConfigSchema = z.object({
  httpHost: z.string().default("127.0.0.1"),
  /** 0 picks a free port (see Coordinator.httpPort). */
  httpPort: port.default(8080),
  grpcHost: z.string().default("127.0.0.1"),
  grpcPort: port.default(50051),
  /** `redis://[user:password@]host:port[/db]`; `rediss://` for TLS (the user:password gives AUTH). */
  redisUrl: z
    .string()
    .url()
    .refine((url) => /^rediss?:\/\//i.test(url), "a Redis URL starts with redis:// (or rediss:// for TLS)")
    .default("redis://127.0.0.1:6379"),
  /** PEM file of the CA(s) that signed Redis's TLS certificate (a rediss:// URL); default: the system's CA store. */
  redisTlsCaFile: z.string().min(1).optional(),
  /** Prefix of every Redis key (BullMQ queues and the coordinator's own state). */
  queuePrefix: z.string().regex(/^[A-Za-z0-9_.-]+$/).default("batchgen"),
  /** A folder path, file:///abs/path, or s3://bucket/prefix?endpoint=...&forcePathStyle=true. */
  storeUrl: z.string().min(1).default("./batchgen-data"),
  /** API keys as "key:tenant" pairs (comma-separated in env/flags). Empty: no auth, tenant "default". */
  apiKeys: z.array(apiKeyEntry).default([]),
  /**
   * The bearer tokens workers may present (comma-separated; several at once for rotation:
   * add the new token, move the workers over, drop the old one). Without one the
   * coordinator refuses to start unless insecureWorkers is set.
   */
  workerToken: secretList.default([]),
  /** Accept workers without a token (tests, a trusted network): warned at start and in a metric. */
  insecureWorkers: z.boolean().default(false),
  /** PEM certificate chain and private key files: the gRPC worker port serves TLS. Both or neither. */
  grpcTlsCert: z.string().default(""),
  grpcTlsKey: z.string().default(""),
  /** Keys GET /metrics requires as `Authorization: Bearer <key>` (comma-separated); empty: open. */
  metricsKey: secretList.default([]),
  /**
   * Start on a Redis that persists nothing (no AOF, no RDB snapshots): a restart of it loses
   * every batch. Refused unless set.
   */
  allowEphemeralRedis: z.boolean().default(false),
  /**
   * Start although Redis lost the state the store remembers (its epoch key is gone): a new
   * epoch begins and the records of the old one stay lost. Refused unless set.
   */
  acceptRedisReset: z.boolean().default(false),
  /** A Redis command that takes longer fails (API calls answer 503 instead of hanging). */
  redisCommandTimeoutMs: positiveInt.default(1_500),
  /** /readyz fails when Redis or the store do not answer within this bound. */
  readyTimeoutMs: positiveInt.default(1_000),
  /**
   * The most lines one worker may hold at once, whatever its Hello declares (its
   * max_concurrency caps its credit below this).
   */
  maxWorkerCredit: positiveInt.default(4_096),
  /** A shard that fails this many times in a row for the same reason is parked (its lines fail with shard_parked). */
  shardMaxFailures: positiveInt.max(1_000).default(5),
  /** Attempts to store one flush of results (backoff with jitter between them) before the lease is given up. */
  resultWriteAttempts: positiveInt.max(100).default(6),
  /** First backoff of a retry (a result write, a failed shard's next run); doubles each time, capped at 30 s, jittered. */
  retryBackoffMs: positiveInt.default(200),
  /** Lines per shard (one BullMQ job each). */
  shardLines: positiveInt.max(100_000).default(256),
  /** A shard also ends once its lines reach this many bytes, so a lease message stays bounded. */
  shardMaxBytes: positiveInt.default(32 * 1024 * 1024),
  /**
   * Prefix-aware sharding: lines with the same prefix key are packed into the same shards
   * within windows of this many lines (at least shardLines); 0 = shards of consecutive lines.
   */
  prefixWindowLines: z.number().int().min(0).default(4096),
  /** Characters of a prompt's lead that make its prefix key. */
  prefixKeyChars: positiveInt.default(512),
  /** BullMQ lock of a leased shard; extended while the worker's stream lives. */
  lockDurationMs: positiveInt.min(1000).default(30_000),
  /** How often the BullMQ stalled checker looks for shards whose lock expired. */
  stalledIntervalMs: positiveInt.min(100).default(15_000),
  /** Longest accepted input line, in bytes. */
  maxLineBytes: positiveInt.default(8 * 1024 * 1024),
  /** Largest accepted upload, in bytes. */
  maxFileBytes: positiveInt.default(2 * 1024 * 1024 * 1024),
  /**
   * A request must arrive whole within this long (408 otherwise): bounds an upload that
   * trickles in forever. The default lets a 2 GiB upload arrive at about 0.6 MB/s.
   */
  requestTimeoutMs: positiveInt.default(3_600_000),
  /** A request whose connection sends nothing for this long is answered 408 and closed. */
  idleTimeoutMs: positiveInt.min(100).default(60_000),
  /**
   * Expiry of an uploaded purpose=batch file that sets no `expires_after` (OpenAI's default:
   * 30 days); 0 keeps such files until deleted.
   */
  batchFileExpirySeconds: z.number().int().min(0).default(30 * 86_400),
  /** How often the janitor deletes expired files (one replica at a time). */
  janitorIntervalMs: positiveInt.min(100).default(60_000),
  /** Temp files of the store older than this are an interrupted upload's; the janitor removes them. */
  staleTempMs: positiveInt.default(24 * 3_600_000),
  /** Completion windows POST /v1/batches accepts ("24h" is OpenAI's only one). */
  completionWindows: z.array(completionWindow).min(1).default(["24h", "1h", "48h", "7d"]),
  /**
   * OpenAI's rule: every input line's url must equal the batch's endpoint (mismatched_endpoint
   * otherwise). Off (default): a batch may mix /v1/chat/completions and /v1/completions lines.
   */
  strictEndpoint: z.boolean().default(false),
  /** Models accepted at ingest even while no worker serving them is connected. */
  models: z.array(z.string().min(1)).default([]),
  /**
   * Results buffered per lease before they are persisted and acked (flushIntervalMs bounds
   * how long they wait). Each flush writes one part object and runs one Redis script, so
   * larger flushes cost less per result: 1000 takes a 1000-line shard in about one part.
   */
  ackEvery: positiveInt.max(10_000).default(1000),
  /** Buffered results are persisted and acked at least this often. */
  flushIntervalMs: positiveInt.default(100),
  heartbeatIntervalMs: positiveInt.min(100).default(5_000),
  /** How often a replica looks for queued shards when it heard of none. */
  leasePollMs: positiveInt.default(500),
  /** How often a replica checks running batches (completion, expiry, cancel, stuck ingest). */
  monitorIntervalMs: positiveInt.default(1_000),
  /** After cancel or expiry, the longest wait for workers to stop before finalizing anyway. */
  stopGraceMs: positiveInt.default(15_000),
  /** Line errors reported in a failed batch's errors.data. */
  maxReportedErrors: positiveInt.default(100),
  /**
   * Per tenant, where its batch events (batch.completed, .failed, .expired, .cancelled)
   * are POSTed, signed with its secret (Standard Webhooks, as OpenAI signs them).
   */
  webhooks: z.array(webhookEntry).default([]),
  /** Attempts per event before it is recorded failed; retries back off from min to max. */
  webhookMaxAttempts: positiveInt.default(15),
  webhookRetryMinMs: positiveInt.default(1_000),
  webhookRetryMaxMs: positiveInt.default(3_600_000),
  /** A receiver that has not answered 2xx in this long counts as failed for that attempt. */
  webhookTimeoutMs: positiveInt.default(10_000),
  /** How long a replica holds a claimed event; one that dies meanwhile leaves it to be delivered again after. */
  webhookClaimMs: positiveInt.min(1000).default(60_000),
  webhookPollMs: positiveInt.default(1_000),
  logLevel: z.enum(["debug", "info", "warn", "error", "silent"]).default("info"),
});

export type CoordinatorConfig = z.infer<typeof coordinatorConfigSchema>;

/** The boolean settings: as flags they may stand alone (--insecure-workers). */
export const COORDINATOR_SWITCHES = ["strictEndpoint", "insecureWorkers", "allowEphemeralRedis", "acceptRedisReset"] as const satisfies ReadonlyArray<
  { [K in keyof CoordinatorConfig]: CoordinatorConfig[K] extends boolean ? K : never }[keyof CoordinatorConfig]
>;

/** Settings that only make sense together, checked at start (the schema checks each alone). */
export function checkCoordinatorConfig(config: CoordinatorConfig): void {
  if (config.workerToken.length === 0 && !config.insecureWorkers) {
    throw new BatchgenError(
      "invalid_request",
      "refusing to open the gRPC worker port without a worker token: set --worker-token (BATCHGEN_WORKER_TOKEN), " +
        "or pass --insecure-workers to accept any client that connects",
      { param: "workerToken" },
    );
  }
  if (config.redisTlsCaFile !== undefined && !/^rediss:\/\//i.test(config.redisUrl)) {
    throw new BatchgenError("invalid_request", "--redis-tls-ca-file needs a rediss:// Redis URL (TLS); the Redis URL is redis://", {
      param: "redisTlsCaFile",
    });
  }
  if ((config.grpcTlsCert === "") !== (config.grpcTlsKey === "")) {
    throw new BatchgenError("invalid_request", "--grpc-tls-cert and --grpc-tls-key go together: give both files or neither", {
      param: config.grpcTlsCert === "" ? "grpcTlsCert" : "grpcTlsKey",
    });
  }
}
export type CoordinatorOptions = z.input<typeof coordinatorConfigSchema>;

/** Validated configuration from flags > BATCHGEN_* environment > defaults. */
export function loadCoordinatorConfig(
  flags: Record<string, unknown> = {},
  env: Record<string, string | undefined> = process.env,
): CoordinatorConfig {
  return loadConfig(coordinatorConfigSchema, { env, envPrefix: "BATCHGEN", flags });
}

/** A completion window ("24h", "90m", "7d", "30s") in milliseconds. */
export function windowMs(window: string): number {
  const m = /^(\d+)([smhd])$/.exec(window);
  if (!m) throw new Error(`bad completion window ${window}`);
  const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "s" | "m" | "h" | "d"];
  return Number(m[1]) * unit;
}
