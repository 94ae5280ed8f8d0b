// The OpenAI-compatible HTTP API on real Redis and a filesystem store: object shapes,
// errors in OpenAI's envelope, tenants, listing, and every bad input file of issue #3
// giving a failed batch with line-numbered errors while the server stays up.
/* eslint-disable @typescript-eslint/no-explicit-any -- API response bodies are untyped JSON */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ScriptedWorker } from "./support/scripted-worker.js";
import {
  api,
  chatLine,
  jsonl,
  KEY_A,
  KEY_B,
  MODEL,
  startCluster,
  submitBatch,
  uploadFile,
  waitForStatus,
  WORKER_TOKEN,
  type Cluster,
} from "./support/harness.js";

let cluster: Cluster;
let url: string;
let worker: ScriptedWorker;

beforeAll(async () => {
  // models: MODEL stays accepted at ingest even if the worker's registration (3 s TTL) lapses on a loaded box.
  cluster = await startCluster({ maxLineBytes: 1024 * 1024, completionWindows: ["24h", "1h"], models: [MODEL] });
  url = cluster.url();
  // Registers MODEL as served, with a context of 512 tokens; it takes no work.
  worker = new ScriptedWorker({ address: cluster.grpc(), model: MODEL, token: WORKER_TOKEN, maxModelLen: 512 });
  await worker.start();
});

afterAll(async () => {
  worker?.kill();
  await cluster?.stop();
});

function expectOpenAIError(body: any, code: string | null, param?: string | null): void {
  expect(Object.keys(body)).toEqual(["error"]);
  expect(typeof body.error.message).toBe("string");
  expect(body.error.message).not.toMatch(/\n\s+at /); // never a stack trace
  expect(typeof body.error.type).toBe("string");
  expect(body.error.code).toBe(code);
  if (param !== undefined) expect(body.error.param).toBe(param);
}

async function serverStillUp(): Promise<void> {
  const r = await fetch(`${url}/healthz`);
  expect(r.status).toBe(200);
}

describe("files", () => {
  it("uploads, describes and returns a file", async () => {
    const content = jsonl([chatLine("a"), chatLine("b")]);
    const up = await uploadFile(url, content, { filename: "requests.jsonl" });
    expect(up.status).toBe(200);
    expect(up.body).toMatchObject({ object: "file", bytes: Buffer.byteLength(content), filename: "requests.jsonl", purpose: "batch" });
    expect(up.body.id).toMatch(/^file_/);
    expect(Number.isInteger(up.body.created_at)).toBe(true);
    const got = await api(url, "GET", `/v1/files/${up.body.id}`);
    expect(got.body).toEqual(up.body);
    const content2 = await api(url, "GET", `/v1/files/${up.body.id}/content`);
    expect(content2.body).toBe(content);
  });

  it("rejects a wrong purpose with 400 and stores nothing", async () => {
    const up = await uploadFile(url, jsonl([chatLine("a")]), { purpose: "fine-tune" });
    expect(up.status).toBe(400);
    expectOpenAIError(up.body, "invalid_purpose", "purpose");
    expect(up.body.error.type).toBe("invalid_request_error");
    await serverStillUp();
  });

  it("rejects a form without a file, and a body that is not multipart", async () => {
    const form = new FormData();
    form.set("purpose", "batch");
    const noFile = await api(url, "POST", "/v1/files", { form });
    expect(noFile.status).toBe(400);
    expectOpenAIError(noFile.body, "missing_required_parameter", "file");
    const notMultipart = await api(url, "POST", "/v1/files", { json: { purpose: "batch" } });
    expect(notMultipart.status).toBe(400);
    expectOpenAIError(notMultipart.body, "invalid_request");
  });

  it("answers 401 to a wrong or missing key and 404 for another tenant's file", async () => {
    const up = await uploadFile(url, jsonl([chatLine("a")]));
    const wrong = await api(url, "GET", `/v1/files/${up.body.id}`, { key: "sk-wrong" });
    expect(wrong.status).toBe(401);
    expectOpenAIError(wrong.body, "invalid_api_key");
    expect(wrong.body.error.type).toBe("authentication_error");
    const none = await api(url, "GET", `/v1/files/${up.body.id}`, { key: null });
    expect(none.status).toBe(401);
    const other = await api(url, "GET", `/v1/files/${up.body.id}`, { key: KEY_B });
    expect(other.status).toBe(404);
    expectOpenAIError(other.body, "not_found");
    expect((await api(url, "GET", `/v1/files/${up.body.id}/content`, { key: KEY_B })).status).toBe(404);
    expect((await api(url, "GET", "/v1/files/file_nope")).status).toBe(404);
  });
});

describe("batches", () => {
  it("creates a batch in the OpenAI shape and validates the request", async () => {
    const up = await uploadFile(url, jsonl([chatLine("x")]));
    const res = await api(url, "POST", "/v1/batches", {
      json: { input_file_id: up.body.id, endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { k: "v" } },
    });
    expect(res.status).toBe(200);
    const b = res.body;
    expect(b).toMatchObject({
      object: "batch",
      endpoint: "/v1/chat/completions",
      errors: null,
      input_file_id: up.body.id,
      completion_window: "24h",
      status: "validating",
      output_file_id: null,
      error_file_id: null,
      in_progress_at: null,
      completed_at: null,
      request_counts: { total: 0, completed: 0, failed: 0 },
      metadata: { k: "v" },
    });
    expect(b.id).toMatch(/^batch_/);
    expect(b.expires_at - b.created_at).toBe(24 * 3600);

    const bad = async (json: unknown, status: number, code: string, param: string): Promise<void> => {
      const r = await api(url, "POST", "/v1/batches", { json });
      expect(r.status, JSON.stringify(json)).toBe(status);
      expectOpenAIError(r.body, code, param);
    };
    await bad({ endpoint: "/v1/chat/completions", completion_window: "24h" }, 400, "missing_required_parameter", "input_file_id");
    await bad({ input_file_id: up.body.id, endpoint: "/v1/moderations", completion_window: "24h" }, 400, "invalid_request", "endpoint");
    await bad({ input_file_id: up.body.id, endpoint: "/v1/completions", completion_window: "5m" }, 400, "invalid_request", "completion_window");
    await bad({ input_file_id: "file_missing", endpoint: "/v1/completions", completion_window: "24h" }, 404, "not_found", "input_file_id");
    await bad({ input_file_id: up.body.id, endpoint: "/v1/completions", completion_window: "24h", metadata: { k: 1 } }, 400, "invalid_request", "metadata");
    const notJson = await fetch(`${url}/v1/batches`, { method: "POST", headers: { authorization: `Bearer ${KEY_A}` }, body: "{" });
    expect(notJson.status).toBe(400);
    expectOpenAIError(await notJson.json(), "invalid_request");
    // another tenant cannot use tenant A's file
    const r = await api(url, "POST", "/v1/batches", {
      key: KEY_B,
      json: { input_file_id: up.body.id, endpoint: "/v1/chat/completions", completion_window: "24h" },
    });
    expect(r.status).toBe(404);
  });

  it("accepts a configured extra completion window", async () => {
    const b = await submitBatch(url, [chatLine("w")], { window: "1h" });
    expect(b.completion_window).toBe("1h");
    expect(b.expires_at - b.created_at).toBe(3600);
  });

  it("answers 404 for an unknown batch and another tenant's batch, 401 for a wrong key", async () => {
    const b = await submitBatch(url, [chatLine("t")]);
    const unknown = await api(url, "GET", "/v1/batches/batch_000000000000aaaaaaaaaaaaaaaaaaaa");
    expect(unknown.status).toBe(404);
    expectOpenAIError(unknown.body, "not_found");
    expect((await api(url, "GET", `/v1/batches/${b.id}`, { key: KEY_B })).status).toBe(404);
    expect((await api(url, "POST", `/v1/batches/${b.id}/cancel`, { key: KEY_B })).status).toBe(404);
    const wrong = await api(url, "GET", `/v1/batches/${b.id}`, { key: "sk-nope" });
    expect(wrong.status).toBe(401);
    expectOpenAIError(wrong.body, "invalid_api_key");
    expect((await api(url, "GET", "/v1/batches", { key: "sk-nope" })).status).toBe(401);
    const unknownRoute = await api(url, "GET", "/v1/nothing");
    expect(unknownRoute.status).toBe(404);
    expectOpenAIError(unknownRoute.body, "not_found");
  });

  it("lists a tenant's batches newest first with cursor pagination", async () => {
    const fresh = await startCluster({ models: [MODEL] });
    try {
      const u = fresh.url();
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await submitBatch(u, [chatLine(`l${i}`)])).id);
      await submitBatch(u, [chatLine("other")], { key: KEY_B });
      const page1 = await api(u, "GET", "/v1/batches?limit=2");
      expect(page1.status).toBe(200);
      expect(page1.body.object).toBe("list");
      expect(page1.body.data.map((b: any) => b.id)).toEqual([ids[2], ids[1]]);
      expect(page1.body.first_id).toBe(ids[2]);
      expect(page1.body.last_id).toBe(ids[1]);
      expect(page1.body.has_more).toBe(true);
      const page2 = await api(u, "GET", `/v1/batches?limit=2&after=${page1.body.last_id}`);
      expect(page2.body.data.map((b: any) => b.id)).toEqual([ids[0]]);
      expect(page2.body.has_more).toBe(false);
      const all = await api(u, "GET", "/v1/batches");
      expect(all.body.data).toHaveLength(3);
      const other = await api(u, "GET", "/v1/batches", { key: KEY_B });
      expect(other.body.data).toHaveLength(1);
      const badLimit = await api(u, "GET", "/v1/batches?limit=0");
      expect(badLimit.status).toBe(400);
      expectOpenAIError(badLimit.body, "invalid_request", "limit");
    } finally {
      await fresh.stop();
    }
  });
});

describe("bad input files fail the batch with line-numbered errors", () => {
  async function failedErrors(content: string | Uint8Array): Promise<any[]> {
    const up = await uploadFile(url, content);
    expect(up.status).toBe(200);
    const created = await api(url, "POST", "/v1/batches", {
      json: { input_file_id: up.body.id, endpoint: "/v1/chat/completions", completion_window: "24h" },
    });
    expect(created.status).toBe(200);
    const b = await waitForStatus(url, created.body.id, ["failed", "in_progress", "completed"]);
    expect(b.status).toBe("failed");
    expect(Number.isInteger(b.failed_at)).toBe(true);
    expect(b.errors.object).toBe("list");
    await serverStillUp();
    return b.errors.data;
  }

  it("invalid JSON", async () => {
    const errors = await failedErrors(jsonl([chatLine("a"), "{not json", chatLine("c")]));
    expect(errors).toEqual([{ code: "invalid_json_line", message: expect.any(String), param: null, line: 2 }]);
  });

  it("missing fields", async () => {
    const noCustomId = JSON.stringify({ method: "POST", url: "/v1/chat/completions", body: { model: MODEL, messages: [{ role: "user", content: "x" }] } });
    const noMessages = JSON.stringify({ custom_id: "m", method: "POST", url: "/v1/chat/completions", body: { model: MODEL } });
    const errors = await failedErrors(jsonl([chatLine("a"), noCustomId, noMessages]));
    expect(errors).toEqual([
      { code: "missing_required_parameter", message: expect.stringContaining("custom_id"), param: "custom_id", line: 2 },
      { code: "missing_required_parameter", message: expect.stringContaining("messages"), param: "body.messages", line: 3 },
    ]);
  });

  it("duplicate custom_id", async () => {
    const errors = await failedErrors(jsonl([chatLine("a"), chatLine("b"), chatLine("a")]));
    expect(errors).toEqual([{ code: "duplicate_custom_id", message: expect.stringContaining('"a"'), param: "custom_id", line: 3 }]);
  });

  it("mixed models", async () => {
    const errors = await failedErrors(jsonl([chatLine("a"), chatLine("b", { model: "other-model" })]));
    expect(errors).toEqual([{ code: "mismatched_model", message: expect.stringContaining("other-model"), param: "body.model", line: 2 }]);
  });

  it("unknown model", async () => {
    const errors = await failedErrors(jsonl([chatLine("a", { model: "no-such-model" }), chatLine("b", { model: "no-such-model" })]));
    expect(errors).toEqual([{ code: "model_not_found", message: expect.stringContaining("no-such-model"), param: "body.model", line: 1 }]);
  });

  it("max_tokens beyond the served model's context", async () => {
    const errors = await failedErrors(jsonl([chatLine("a"), chatLine("b", { maxTokens: 100_000 })]));
    expect(errors).toEqual([{ code: "token_limit_exceeded", message: expect.stringContaining("512"), param: "body.max_tokens", line: 2 }]);
  });

  it("an empty file", async () => {
    const errors = await failedErrors("");
    expect(errors).toEqual([{ code: "empty_file", message: expect.any(String), param: null, line: null }]);
  });

  it("a 50 MB line", async () => {
    const big = JSON.stringify({ custom_id: "big", method: "POST", url: "/v1/chat/completions", body: { model: MODEL, messages: [{ role: "user", content: "x".repeat(50 * 1024 * 1024) }] } });
    const content = Buffer.from(jsonl([chatLine("a"), big, chatLine("c")]));
    const errors = await failedErrors(content);
    expect(errors).toEqual([{ code: "line_too_large", message: expect.stringContaining("bytes"), param: null, line: 2 }]);
  });
});

describe("cancel", () => {
  it("cancels a batch that cannot run yet, and refuses to cancel a failed one", async () => {
    const fresh = await startCluster({ models: ["queued-model"] });
    try {
      const u = fresh.url();
      const b = await submitBatch(u, [chatLine("a", { model: "queued-model" }), chatLine("b", { model: "queued-model" })]);
      await waitForStatus(u, b.id, ["in_progress"]);
      const c = await api(u, "POST", `/v1/batches/${b.id}/cancel`);
      expect(c.status).toBe(200);
      expect(["cancelling", "cancelled"]).toContain(c.body.status);
      expect(Number.isInteger(c.body.cancelling_at)).toBe(true);
      const done = await waitForStatus(u, b.id, ["cancelled"]);
      expect(done.request_counts).toEqual({ total: 2, completed: 0, failed: 2 });
      expect(done.output_file_id).toBeNull();
      const errs = (await api(u, "GET", `/v1/files/${done.error_file_id}/content`)).body as string;
      const rows = errs.trim().split("\n").map((l) => JSON.parse(l));
      expect(rows.map((r) => [r.custom_id, r.error.code])).toEqual([
        ["a", "batch_cancelled"],
        ["b", "batch_cancelled"],
      ]);
      const again = await api(u, "POST", `/v1/batches/${b.id}/cancel`);
      expect(again.body.status).toBe("cancelled");

      const failed = await submitBatch(u, ["{oops"]);
      await waitForStatus(u, failed.id, ["failed"]);
      const refuse = await api(u, "POST", `/v1/batches/${failed.id}/cancel`);
      expect(refuse.status).toBe(409);
      expectOpenAIError(refuse.body, "conflict");
    } finally {
      await fresh.stop();
    }
  });
});
