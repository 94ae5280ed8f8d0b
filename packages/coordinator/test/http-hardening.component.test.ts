// The HTTP API under input no client should send (issue #9): a form cut short, every
// truncation of a valid upload, lying Content-Lengths, uploads dropped mid-way (counted
// open files and temp files), silent connections, a multipart type without a boundary,
// wrong methods, non-ASCII file names both ways, lines that are not UTF-8, values the
// engine would reject, and usage that counts only lines that ran. Real Redis, a
// filesystem store, the coordinator in this process (so its open files are ours to count).
/* eslint-disable @typescript-eslint/no-explicit-any -- API response bodies are untyped JSON */
import { existsSync } from "node:fs";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { abortedRequest, multipart, openFds, rawRequest, requestHead, tempFiles } from "./support/raw-http.js";
import { ScriptedWorker } from "./support/scripted-worker.js";
import { api, chatLine, jsonl, KEY_A, MODEL, startCluster, submitBatch, uploadFile, waitFor, waitForStatus, WORKER_TOKEN, type Cluster } from "./support/harness.js";

let cluster: Cluster;
let port: number;
let url: string;
let worker: ScriptedWorker;

const BOUNDARY = "XyZ";
const auth = { authorization: `Bearer ${KEY_A}` };

function uploadBody(content: string, filenameParam = 'filename="in.jsonl"'): Buffer {
  return multipart(BOUNDARY, [
    { disposition: 'form-data; name="purpose"', body: "batch" },
    { disposition: `form-data; name="file"; ${filenameParam}`, type: "application/jsonl", body: content },
  ]);
}

function post(path: string, body: Buffer, headers: Record<string, string | number> = {}): Buffer {
  return Buffer.concat([
    requestHead("POST", path, { ...auth, "content-type": `multipart/form-data; boundary=${BOUNDARY}`, "content-length": body.length, ...headers }),
    body,
  ]);
}

function expectJsonError(r: { status: number; body: string } | null, status: number): any {
  expect(r, "a response").not.toBeNull();
  expect(r!.status).toBe(status);
  const body = JSON.parse(r!.body);
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error.message).not.toMatch(/\n\s+at /);
  return body.error;
}

async function stillServing(): Promise<void> {
  const r = await fetch(`${url}/healthz`);
  expect(r.status).toBe(200);
  const up = await uploadFile(url, jsonl([chatLine("alive")]));
  expect(up.status).toBe(200);
}

beforeAll(async () => {
  cluster = await startCluster({ idleTimeoutMs: 700, requestTimeoutMs: 3_000, maxFileBytes: 64 * 1024 * 1024, shardLines: 4 });
  port = cluster.replicas[0]!.httpPort;
  url = cluster.url();
  // Answers even lines with a response and odd lines with a line error (both carry usage 3 + 2).
  worker = new ScriptedWorker({
    address: cluster.grpc(),
    model: MODEL,
    token: WORKER_TOKEN,
    credit: 64,
    respond: ({ customId }) => (customId.startsWith("err") ? { error: { code: "engine_error", message: "no" } } : { body: { ok: customId } }),
  });
  await worker.start();
});

afterAll(async () => {
  worker?.kill();
  await cluster?.stop();
});

describe("never crash on input", () => {
  it("answers the 71-byte form whose file part never ends with 400 and keeps serving", async () => {
    const body = Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc`, "latin1");
    expect(body.length).toBe(71);
    for (let i = 0; i < 4; i++) {
      const err = expectJsonError(await rawRequest(port, post("/v1/files", body)), 400);
      expect(err.message).toContain("Unexpected end of form");
    }
    await stillServing();
    expect(tempFiles(cluster.storeDir)).toEqual([]);
  });

  it("answers every truncation of a valid upload, at every byte, with a JSON error", async () => {
    const full = uploadBody(jsonl([chatLine("t1"), chatLine("t2")]));
    const statuses = new Map<number, number>();
    for (let k = 0; k < full.length; k++) {
      const r = await rawRequest(port, post("/v1/files", full.subarray(0, k)));
      expect(r, `truncated at ${k}`).not.toBeNull();
      statuses.set(r!.status, (statuses.get(r!.status) ?? 0) + 1);
      if (r!.status !== 200) expectJsonError(r, 400);
      // Only a cut inside the CRLF after the closing boundary still holds the whole form.
      else expect(k).toBeGreaterThanOrEqual(full.length - 2);
    }
    expect(statuses.get(400)).toBeGreaterThanOrEqual(full.length - 2);
    expect([...statuses.keys()].every((s) => s === 200 || s === 400)).toBe(true);
    await stillServing();
    expect(tempFiles(cluster.storeDir)).toEqual([]);
  });

  it("answers a form cut short inside a file part of another name (ignored) with 400", async () => {
    const form = multipart(BOUNDARY, [
      { disposition: 'form-data; name="purpose"', body: "batch" },
      { disposition: 'form-data; name="attachment"; filename="b.jsonl"', body: "x".repeat(100) },
    ]);
    const cut = form.subarray(0, form.length - 30);
    expectJsonError(await rawRequest(port, post("/v1/files", cut)), 400);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).not.toMatch(/batchgen_coordinator_uncaught_errors_total\{[^}]*\} [1-9]/);
  });

  it("answers a multipart type without a boundary with 400, not 500", async () => {
    const body = Buffer.from("--x\r\n\r\n");
    const r = await rawRequest(port, Buffer.concat([requestHead("POST", "/v1/files", { ...auth, "content-type": "multipart/form-data", "content-length": body.length }), body]));
    expect(expectJsonError(r, 400).message).toContain("boundary");
  });

  it("answers a request that is not HTTP with 400", async () => {
    const r = await rawRequest(port, Buffer.from("GARBAGE\r\n\r\n"));
    expectJsonError(r, 400);
    await stillServing();
  });

  it("answers a wrong method with 405 and an Allow header", async () => {
    const del = await fetch(`${url}/v1/batches`, { method: "DELETE", headers: auth });
    expect(del.status).toBe(405);
    expect(del.headers.get("allow")).toBe("GET, POST");
    expect((await del.json()).error.code).toBe("method_not_allowed");
    const put = await fetch(`${url}/v1/files/file_x`, { method: "PUT", headers: auth });
    expect(put.status).toBe(405);
    expect(put.headers.get("allow")).toBe("DELETE, GET");
    expect((await fetch(`${url}/healthz`, { method: "POST" })).status).toBe(405);
  });
});

describe("limits and timeouts", () => {
  it("refuses a declared 2 GiB (and 4 GiB) body at once with 413, reading none of it", async () => {
    for (const declared of [2 * 1024 ** 3, 4 * 1024 ** 3]) {
      const r = await rawRequest(port, post("/v1/files", Buffer.from("tiny"), { "content-length": declared }), 5_000);
      const err = expectJsonError(r, 413);
      expect(err.message).toContain(String(declared));
      // 413, not the 408 of the 700 ms idle timeout: refused on the header alone, without
      // waiting for the body (the time bound, loose for a busy box, only catches a hang).
      expect(r!.ms).toBeLessThan(2_000);
      expect(r!.headers.connection).toBe("close");
    }
    const json = await rawRequest(port, Buffer.concat([requestHead("POST", "/v1/batches", { ...auth, "content-type": "application/json", "content-length": 50 * 1024 * 1024 }), Buffer.from("{")]));
    expectJsonError(json, 413);
  });

  it("refuses a chunked upload past the file limit with 413 once the limit is crossed", async () => {
    const small = await startCluster({ maxFileBytes: 1000 });
    try {
      const up = await uploadFile(small.url(), "x".repeat(5000));
      expect(up.status).toBe(413);
      expect(up.body.error.code).toBe("payload_too_large");
      expect(tempFiles(small.storeDir)).toEqual([]);
    } finally {
      await small.stop();
    }
  });

  it("answers a body that stops arriving with 408 after the idle timeout", async () => {
    const body = uploadBody(jsonl([chatLine("slow")]));
    const partial = post("/v1/files", body).subarray(0, 200);
    const r = await rawRequest(port, partial, 5_000);
    const err = expectJsonError(r, 408);
    expect(err.code).toBe("request_timeout");
    expect(r!.ms).toBeGreaterThanOrEqual(600);
    expect(r!.ms).toBeLessThan(3_000);
    await waitFor("temp file removed", async () => tempFiles(cluster.storeDir).length === 0, 5_000);
  });

  it("answers a body that trickles in past the request timeout with 408", async () => {
    const { connect } = await import("node:net");
    const bytes = post("/v1/files", uploadBody("x".repeat(2000)));
    const started = Date.now();
    const res = await new Promise<string>((resolve) => {
      const s = connect(port, "127.0.0.1");
      let out = "";
      let sent = 0;
      const tick = setInterval(() => {
        if (sent < bytes.length) s.write(bytes.subarray(sent, (sent += 40)));
      }, 200); // 200 B/s: slower than any idle timeout fires, too slow to finish in 3 s
      s.on("data", (d) => (out += d.toString()));
      s.on("close", () => {
        clearInterval(tick);
        resolve(out);
      });
      s.on("error", () => undefined);
    });
    expect(res).toMatch(/^HTTP\/1.1 408/);
    expect(Date.now() - started).toBeLessThan(6_000);
    await waitFor("temp file removed", async () => tempFiles(cluster.storeDir).length === 0, 5_000);
  });
});

describe("no leaks", () => {
  it("200 aborted uploads leave no open file and no temp file", async () => {
    const body = post("/v1/files", uploadBody("y".repeat(64 * 1024)));
    // Warm up (lazy modules, pooled sockets), then count.
    for (let i = 0; i < 5; i++) await abortedRequest(port, body.subarray(0, 40_000));
    await new Promise((r) => setTimeout(r, 200));
    const fdsBefore = openFds();
    for (let i = 0; i < 200; i++) await abortedRequest(port, body.subarray(0, 1_000 + ((i * 997) % 60_000)));
    await waitFor("temp files removed", async () => tempFiles(cluster.storeDir).length === 0, 10_000);
    await waitFor("fds back", async () => openFds() <= fdsBefore + 3, 10_000);
    expect(openFds()).toBeLessThanOrEqual(fdsBefore + 3);
    await stillServing();
  });
});

describe("file names (RFC 5987 / 6266)", () => {
  it("keeps a non-ASCII filename* and raw UTF-8 names, and serves them back in a valid header", async () => {
    const star = await rawRequest(port, post("/v1/files", uploadBody(jsonl([chatLine("n1")]), `filename="fallback.jsonl"; filename*=UTF-8''%E2%82%AC-donn%C3%A9es.jsonl`)));
    expect(star!.status).toBe(200);
    const starFile = JSON.parse(star!.body);
    expect(starFile.filename).toBe("€-données.jsonl");
    const content = await fetch(`${url}/v1/files/${starFile.id}/content`, { headers: auth });
    expect(content.status).toBe(200);
    expect(content.headers.get("content-disposition")).toBe(`attachment; filename="_-donn_es.jsonl"; filename*=UTF-8''%E2%82%AC-donn%C3%A9es.jsonl`);

    const raw = await rawRequest(port, post("/v1/files", uploadBody(jsonl([chatLine("n2")]), 'filename="naïve \\"quoted\\".jsonl"')));
    expect(raw!.status).toBe(200);
    const rawFile = JSON.parse(raw!.body);
    expect(rawFile.filename).toBe('naïve "quoted".jsonl');
    const got = await api(url, "GET", `/v1/files/${rawFile.id}`);
    expect(got.body.filename).toBe('naïve "quoted".jsonl');
    expect((await fetch(`${url}/v1/files/${rawFile.id}/content`, { headers: auth })).status).toBe(200);
  });

  it("round-trips a non-ASCII name through the official SDK", async () => {
    const client = new OpenAI({ apiKey: KEY_A, baseURL: `${url}/v1`, maxRetries: 0 });
    const f = await client.files.create({ file: await toFile(Buffer.from(jsonl([chatLine("sdk-n")])), "日本語.jsonl"), purpose: "batch" });
    expect((await client.files.retrieve(f.id)).filename).toBe("日本語.jsonl");
    const text = await (await client.files.content(f.id)).text();
    expect(text).toBe(jsonl([chatLine("sdk-n")]));
  });
});

describe("input rules at ingest", () => {
  async function failedWith(content: Buffer | string): Promise<any[]> {
    const up = await uploadFile(url, content);
    expect(up.status).toBe(200);
    const b = await api(url, "POST", "/v1/batches", { json: { input_file_id: up.body.id, endpoint: "/v1/chat/completions", completion_window: "24h" } });
    const done = await waitForStatus(url, b.body.id, ["failed", "completed"]);
    expect(done.status).toBe("failed");
    return done.errors.data;
  }

  it("fails a line that is not valid UTF-8 with its line number instead of replacing bytes", async () => {
    const bad = Buffer.from(chatLine("caf\u00e9"), "utf8");
    const latin1 = Buffer.from(chatLine("caf\u00e9"), "latin1"); // é as the single byte 0xe9
    const errors = await failedWith(Buffer.concat([bad, Buffer.from("\n"), latin1, Buffer.from("\n")]));
    expect(errors).toEqual([expect.objectContaining({ code: "invalid_utf8", line: 2 })]);
  });

  it("fails values the engine would reject (top_k, priority, max_tokens past int32) at ingest", async () => {
    const line = (id: string, extra: Record<string, unknown>): string =>
      JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: MODEL, messages: [{ role: "user", content: "x" }], ...extra } });
    const errors = await failedWith(jsonl([line("a", { top_k: 2 ** 31 }), line("b", { priority: 2 ** 40 }), line("c", { top_p: 0 }), line("d", { top_k: 40 })]));
    expect(errors.map((e: any) => [e.line, e.param])).toEqual([
      [1, "body.top_k"],
      [2, "body.priority"],
      [3, "body.top_p"],
    ]);
  });

  it("counts usage only for lines that ran (a line error carries no tokens)", async () => {
    const lines = ["ok-1", "err-1", "ok-2", "err-2", "ok-3"].map((id) => chatLine(id));
    const b = await submitBatch(url, lines);
    const done = await waitForStatus(url, b.id, ["completed"]);
    expect(done.request_counts).toEqual({ total: 5, completed: 3, failed: 2 });
    expect(done.usage).toMatchObject({ input_tokens: 9, output_tokens: 6, total_tokens: 15 });
  });
});

describe("process guard", () => {
  it("a stored input file survives and the process is up after all of the above", async () => {
    const up = await uploadFile(url, jsonl([chatLine("last")]));
    // Well after its response closed, the upload's object is still there (no cleanup ran on success).
    await new Promise((r) => setTimeout(r, 300));
    expect(existsSync(join(cluster.storeDir, "files", up.body.id))).toBe(true);
    expect((await api(url, "GET", `/v1/files/${up.body.id}/content`)).body).toEqual(JSON.parse(chatLine("last")));
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).not.toMatch(/batchgen_coordinator_uncaught_errors_total\{[^}]*\} [1-9]/);
    expect(metrics).toMatch(/batchgen_coordinator_http_requests_rejected_total\{status="400"\} [1-9]/);
  });
});
