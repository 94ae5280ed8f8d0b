// The files lifecycle (issue #9) through the official `openai` SDK where it has the call:
// list (purpose, limit, after, order), retrieve, delete (refused while a running batch
// reads the file), expires_after on upload and output_expires_after on batches, and the
// janitor deleting expired files with their objects, shard indexes and Redis records, and
// stale temp files. Real Redis, a filesystem store, a scripted gRPC worker (test double).
import { existsSync, mkdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BatchRecord } from "../src/job-store.js";
import { RedisJobStore } from "../src/redis/redis-job-store.js";
import { tempFiles } from "./support/raw-http.js";
import { ScriptedWorker } from "./support/scripted-worker.js";
import { api, chatLine, jsonl, KEY_A, KEY_B, MODEL, startCluster, waitForStatus, WORKER_TOKEN, type Cluster } from "./support/harness.js";

let cluster: Cluster;
let client: OpenAI;
let worker: ScriptedWorker;
const HOUR = 3600;

beforeAll(async () => {
  // batchFileExpirySeconds 0: uploads without expires_after are kept (the tests set expiries themselves).
  cluster = await startCluster({ shardLines: 4, batchFileExpirySeconds: 0 });
  client = new OpenAI({ apiKey: KEY_A, baseURL: `${cluster.url()}/v1`, maxRetries: 0 });
  worker = new ScriptedWorker({ address: cluster.grpc(), model: MODEL, token: WORKER_TOKEN, credit: 64 });
  await worker.start();
});

afterAll(async () => {
  worker?.kill();
  await cluster?.stop();
});

const upload = async (name: string, extra: Partial<OpenAI.FileCreateParams> = {}, c: OpenAI = client) =>
  c.files.create({ file: await toFile(Buffer.from(jsonl([chatLine(name)])), `${name}.jsonl`), purpose: "batch", ...extra });

const stored = (id: string): boolean => existsSync(join(cluster.storeDir, "files", id));

describe("listing, retrieving and deleting files with the openai SDK", () => {
  it("lists a tenant's files newest first, by purpose, with cursor pages in both orders", async () => {
    const mine = [];
    for (let i = 0; i < 5; i++) mine.push((await upload(`list-${i}`)).id);
    const other = new OpenAI({ apiKey: KEY_B, baseURL: `${cluster.url()}/v1`, maxRetries: 0 });
    await upload("theirs", {}, other);

    const page = await client.files.list({ limit: 2, purpose: "batch" });
    expect(page.data.map((f) => f.id)).toEqual([mine[4], mine[3]]);
    expect(page.has_more).toBe(true);
    // The SDK follows `after` page by page.
    const all: string[] = [];
    for await (const f of client.files.list({ limit: 2, purpose: "batch" })) all.push(f.id);
    expect(all.filter((id) => mine.includes(id))).toEqual([...mine].reverse());
    const asc: string[] = [];
    for await (const f of client.files.list({ limit: 3, order: "asc" })) asc.push(f.id);
    expect(asc.filter((id) => mine.includes(id))).toEqual(mine);
    const theirs: string[] = [];
    for await (const f of other.files.list()) theirs.push(f.id);
    expect(theirs).toHaveLength(1);
    expect((await client.files.list({ purpose: "batch_output" })).data).toEqual([]);

    const bad = await api(cluster.url(), "GET", "/v1/files?order=sideways");
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe("order");
    expect((await api(cluster.url(), "GET", "/v1/files?limit=0")).status).toBe(400);
  });

  it("retrieves and deletes a file: gone from the API, the list and storage; another tenant cannot", async () => {
    const f = await upload("del");
    expect((await client.files.retrieve(f.id)).id).toBe(f.id);
    expect(stored(f.id)).toBe(true);
    const other = new OpenAI({ apiKey: KEY_B, baseURL: `${cluster.url()}/v1`, maxRetries: 0 });
    await expect(other.files.delete(f.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const deleted = await client.files.delete(f.id);
    expect(deleted).toMatchObject({ id: f.id, object: "file", deleted: true });
    await expect(client.files.retrieve(f.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(client.files.delete(f.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    expect(stored(f.id)).toBe(false);
    const ids: string[] = [];
    for await (const x of client.files.list()) ids.push(x.id);
    expect(ids).not.toContain(f.id);
  });

  it("refuses to delete a file a running batch reads (409), and deletes it with the batch's shard index once the batch ended", async () => {
    const holder = new ScriptedWorker({ address: cluster.grpc(), model: "held-model", token: WORKER_TOKEN, credit: 8, answer: false });
    await holder.start();
    try {
      const lines = Array.from({ length: 6 }, (_, i) => chatLine(`held-${i}`, { model: "held-model" }));
      const f = await client.files.create({ file: await toFile(Buffer.from(jsonl(lines)), "held.jsonl"), purpose: "batch" });
      const b = await client.batches.create({ input_file_id: f.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
      await waitForStatus(cluster.url(), b.id, ["in_progress"]);
      const refused = client.files.delete(f.id);
      await expect(refused).rejects.toBeInstanceOf(OpenAI.ConflictError);
      await expect(refused).rejects.toThrow(b.id);
      expect(stored(f.id)).toBe(true);
      expect(existsSync(join(cluster.storeDir, "batches", b.id, "shards.json"))).toBe(true);

      await client.batches.cancel(b.id);
      await waitForStatus(cluster.url(), b.id, ["cancelled"]);
      expect((await client.files.delete(f.id)).deleted).toBe(true);
      expect(stored(f.id)).toBe(false);
      expect(existsSync(join(cluster.storeDir, "batches", b.id))).toBe(false);
      // The batch object itself stays, as OpenAI keeps it.
      expect((await client.batches.retrieve(b.id)).status).toBe("cancelled");
    } finally {
      holder.kill();
    }
  });
});

describe("deleting a file and creating a batch of it at once", () => {
  it("the store creates a batch only while its input file exists, so a deleted file is never read", async () => {
    const store = new RedisJobStore({ redisUrl: process.env.REDIS_URL!, prefix: cluster.prefix, lockDurationMs: 2000, stalledIntervalMs: 500 });
    try {
      const f = await upload("race");
      const batch = (id: string): BatchRecord => ({
        id,
        tenant: "tenant-a",
        status: "validating",
        endpoint: "/v1/chat/completions",
        inputFileId: f.id,
        inputKey: `files/${f.id}`,
        completionWindow: "24h",
        metadata: null,
        priority: 0,
        createdAtMs: Date.now(),
        expiresAtMs: Date.now() + 86_400_000,
        inProgressAtMs: null,
        finalizingAtMs: null,
        completedAtMs: null,
        failedAtMs: null,
        expiredAtMs: null,
        cancellingAtMs: null,
        cancelledAtMs: null,
        outputFileId: null,
        errorFileId: null,
        errors: null,
        model: null,
        total: 0,
        shards: 0,
        shardLines: 0,
        completed: 0,
        failed: 0,
        promptTokens: 0,
        completionTokens: 0,
        stopReason: null,
        outputExpiresAfterS: null,
      });
      // A reader not yet final: the delete is refused.
      expect(await store.createBatch(batch("batch_000000000001aaaaaaaaaaaaaaaaaaaa"))).toBe(true);
      expect(await store.deleteFile(f.id, Date.now())).toEqual({ deleted: false, readBy: "batch_000000000001aaaaaaaaaaaaaaaaaaaa" });
      await store.transitionBatch("batch_000000000001aaaaaaaaaaaaaaaaaaaa", ["validating"], "failed", { failedAtMs: Date.now() });
      expect((await store.deleteFile(f.id, Date.now()))?.deleted).toBe(true);
      // Deleted first: a batch of it is not created at all.
      expect(await store.createBatch(batch("batch_000000000002aaaaaaaaaaaaaaaaaaaa"))).toBe(false);
      expect(await store.getBatch("batch_000000000002aaaaaaaaaaaaaaaaaaaa")).toBeNull();
    } finally {
      await store.close();
    }
  });
});

describe("expiry and the janitor", () => {
  it("sets expires_at from expires_after, and the janitor deletes the expired file from the API and storage", async () => {
    const f = await upload("exp", { expires_after: { anchor: "created_at", seconds: HOUR } });
    expect(f.expires_at).toBe(f.created_at + HOUR);
    const keep = await upload("keep");
    expect(keep.expires_at).toBeNull();
    const later = await upload("later", { expires_after: { anchor: "created_at", seconds: 2 * HOUR } });

    await cluster.replicas[0]!.sweep(Date.now()); // nothing is due yet
    expect(stored(f.id)).toBe(true);
    await cluster.replicas[0]!.sweep(Date.now() + HOUR * 1000 + 1000);
    await expect(client.files.retrieve(f.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    expect(stored(f.id)).toBe(false);
    expect(stored(keep.id)).toBe(true);
    expect((await client.files.retrieve(later.id)).id).toBe(later.id);
    const metrics = await (await fetch(`${cluster.url()}/metrics`)).text();
    expect(metrics).toMatch(/batchgen_coordinator_janitor_deleted_total\{what="expired_file"\} [1-9]/);
  });

  it("keeps an expired file a running batch reads until the batch ends; other expired files go meanwhile", async () => {
    const holder = new ScriptedWorker({ address: cluster.grpc(), model: "held-exp", token: WORKER_TOKEN, credit: 8, answer: false });
    await holder.start();
    try {
      const lines = [chatLine("h1", { model: "held-exp" })];
      const read = await client.files.create({
        file: await toFile(Buffer.from(jsonl(lines)), "read.jsonl"),
        purpose: "batch",
        expires_after: { anchor: "created_at", seconds: HOUR },
      });
      const other = await upload("other-exp", { expires_after: { anchor: "created_at", seconds: HOUR } });
      const b = await client.batches.create({ input_file_id: read.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
      await waitForStatus(cluster.url(), b.id, ["in_progress"]);
      const later = Date.now() + HOUR * 1000 + 1000;
      await cluster.replicas[0]!.sweep(later);
      expect(stored(read.id)).toBe(true);
      expect(stored(other.id)).toBe(false);
      await client.batches.cancel(b.id);
      await waitForStatus(cluster.url(), b.id, ["cancelled"]);
      await cluster.replicas[0]!.sweep(later);
      expect(stored(read.id)).toBe(false);
      await expect(client.files.retrieve(read.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    } finally {
      holder.kill();
    }
  });

  it("rejects an expires_after outside OpenAI's range or with another anchor", async () => {
    await expect(upload("short", { expires_after: { anchor: "created_at", seconds: 60 } })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(upload("anchor", { expires_after: { anchor: "last_active_at" as "created_at", seconds: HOUR } })).rejects.toThrow(
      /expires_after\.anchor/,
    );
  });

  it("gives output and error files the batch's output_expires_after, and the janitor deletes them", async () => {
    const lines = [chatLine("o1"), chatLine("o2")];
    const f = await client.files.create({ file: await toFile(Buffer.from(jsonl(lines)), "o.jsonl"), purpose: "batch" });
    const b = await client.batches.create({
      input_file_id: f.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      output_expires_after: { anchor: "created_at", seconds: 2 * HOUR },
    });
    const done = await waitForStatus(cluster.url(), b.id, ["completed"]);
    const out = await client.files.retrieve(done.output_file_id);
    expect(out.expires_at).toBe(out.created_at + 2 * HOUR);
    expect(stored(out.id)).toBe(true);
    const bad = await api(cluster.url(), "POST", "/v1/batches", {
      json: { input_file_id: f.id, endpoint: "/v1/chat/completions", completion_window: "24h", output_expires_after: { anchor: "created_at", seconds: 10 } },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe("output_expires_after.seconds");

    await cluster.replicas[0]!.sweep(Date.now() + 2 * HOUR * 1000 + 1000);
    await expect(client.files.retrieve(out.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    expect(stored(out.id)).toBe(false);
    // The input file had no expiry: it stays.
    expect(stored(f.id)).toBe(true);
  });

  it("gives an upload without expires_after the configured default (OpenAI's 30 days)", async () => {
    const c = await startCluster({});
    try {
      const other = new OpenAI({ apiKey: KEY_A, baseURL: `${c.url()}/v1`, maxRetries: 0 });
      const f = await upload("default", {}, other);
      expect(f.expires_at).toBe(f.created_at + 30 * 86_400);
    } finally {
      await c.stop();
    }
  });

  it("removes stale temp files of interrupted uploads, and only stale ones", async () => {
    const dir = join(cluster.storeDir, ".batchgen-tmp");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "crashed-upload"), "partial");
    const old = new Date(Date.now() - 2 * 86_400_000);
    utimesSync(join(dir, "crashed-upload"), old, old);
    writeFileSync(join(dir, "upload-in-flight"), "partial");
    await cluster.replicas[0]!.sweep();
    expect(tempFiles(cluster.storeDir)).toEqual(["upload-in-flight"]);
  });

  it("two replicas sweeping at once delete an expired file once", async () => {
    const second = await cluster.addReplica();
    const urls = [cluster.url(0), cluster.url(cluster.replicas.length - 1)];
    const deletedCounts = () =>
      Promise.all(
        urls.map(async (u) => {
          const text = await (await fetch(`${u}/metrics`)).text();
          return Number(/batchgen_coordinator_janitor_deleted_total\{what="expired_file"\} (\d+)/.exec(text)?.[1] ?? 0);
        }),
      );
    const before = await deletedCounts();
    const f = await upload("two", { expires_after: { anchor: "created_at", seconds: HOUR } });
    const when = Date.now() + HOUR * 1000 + 1000;
    await Promise.all([cluster.replicas[0]!.sweep(when), second.sweep(when)]);
    expect(stored(f.id)).toBe(false);
    const after = await deletedCounts();
    expect(after[0]! - before[0]! + (after[1]! - before[1]!)).toBe(1);
  });
});
