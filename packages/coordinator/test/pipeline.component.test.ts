// Component tests of the whole coordinator (HTTP API, ingest, BullMQ leases, gRPC
// sessions, parts, finalizer) on real Redis and a filesystem store, driven by a scripted
// gRPC worker (a test double of the worker package, named as such).
import { afterEach, describe, expect, it } from "vitest";
import { ScriptedFleet } from "./support/scripted-fleet.js";
import {
  api,
  chatLine,
  completionLine,
  parseJsonl,
  startCluster,
  submitBatch,
  waitForStatus,
  type Cluster,
} from "./support/harness.js";

let cluster: Cluster | null = null;
const fleet = new ScriptedFleet({ credit: 512 });
const worker = fleet.start.bind(fleet);

afterEach(async () => {
  fleet.killAll();
  await cluster?.stop();
  cluster = null;
});

describe("pipeline with a scripted worker (component)", () => {
  it("runs a 600-line batch over 3 shards: output in input order, each line once, errors to the error file", async () => {
    cluster = await startCluster({ shardLines: 256 });
    const url = cluster.url();
    await worker(cluster, {
      respond: ({ lineIndex, customId, body }) =>
        lineIndex % 100 === 7
          ? { error: { code: "context_length_exceeded", message: `line ${lineIndex} too long` } }
          : { body: { object: "chat.completion", model: body.model, choices: [{ index: 0, message: { role: "assistant", content: `echo:${customId}` }, finish_reason: "stop" }], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } } },
    });
    const lines = Array.from({ length: 600 }, (_, i) => chatLine(`req-${i}`));
    const created = await submitBatch(url, lines, { metadata: { purpose: "test" } });
    expect(created).toMatchObject({ object: "batch", status: "validating", endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { purpose: "test" } });

    const done = await waitForStatus(url, created.id, ["completed", "failed"]);
    expect(done.status).toBe("completed");
    expect(done.request_counts).toEqual({ total: 600, completed: 594, failed: 6 });
    expect(done.errors).toBeNull();
    for (const k of ["created_at", "in_progress_at", "finalizing_at", "completed_at", "expires_at"]) {
      expect(Number.isInteger(done[k]), k).toBe(true);
    }
    // Usage counts lines that ran: the 6 line errors carry no tokens (594 x 3 prompt, 594 x 2 completion).
    expect(done.progress).toMatchObject({ lines_done: 600, prompt_tokens: 1782, completion_tokens: 1188 });

    const out = await api(url, "GET", `/v1/files/${done.output_file_id}/content`);
    expect(out.status).toBe(200);
    const outLines = parseJsonl(out.body as string);
    expect(outLines.map((l) => l.custom_id)).toEqual(
      Array.from({ length: 600 }, (_, i) => i).filter((i) => i % 100 !== 7).map((i) => `req-${i}`),
    );
    expect(outLines[0]).toMatchObject({ custom_id: "req-0", error: null, response: { status_code: 200, body: { choices: [{ message: { content: "echo:req-0" } }] } } });
    expect(outLines[0].id).toMatch(/^batch_req_/);
    expect(outLines[0].response.request_id).toMatch(/^req_/);

    const errs = parseJsonl((await api(url, "GET", `/v1/files/${done.error_file_id}/content`)).body as string);
    expect(errs.map((l) => l.custom_id)).toEqual([7, 107, 207, 307, 407, 507].map((i) => `req-${i}`));
    expect(errs[0]).toMatchObject({ response: null, error: { code: "context_length_exceeded" } });

    const fileObj = await api(url, "GET", `/v1/files/${done.output_file_id}`);
    expect(fileObj.body).toMatchObject({ object: "file", purpose: "batch_output", id: done.output_file_id });

    const metrics = await fetch(`${url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/batchgen_coordinator_batches\{status="completed"\} 1/);
    expect(metrics).toMatch(/batchgen_coordinator_results_total 600/);
    expect(metrics).toMatch(/batchgen_coordinator_shards_done_total 3/);
    expect(metrics).toMatch(/batchgen_coordinator_lines_completed_total\{outcome="response"\} 594/);
    expect(metrics).toMatch(/batchgen_coordinator_lines_completed_total\{outcome="error"\} 6/);
    expect(metrics).toMatch(/batchgen_coordinator_tokens_completed_total\{kind="completion"\} 1188/);
    expect(metrics).toMatch(/batchgen_coordinator_shards\{model="[^"]+",state="queued"\} 0/);
    expect(metrics).toMatch(/batchgen_coordinator_shards\{model="[^"]+",state="leased"\} 0/);
    expect(metrics).toMatch(/batchgen_coordinator_workers_connected\{model="[^"]+"\} 1/);
    expect(metrics).toMatch(/batchgen_coordinator_lease_expiries_total 0/);
    expect(metrics).toMatch(/batchgen_coordinator_process_resident_memory_bytes/);
  });

  it("cuts shards by bytes as well as lines, and still writes every line once in order", async () => {
    cluster = await startCluster({ shardLines: 256, shardMaxBytes: 1_000 });
    const url = cluster.url();
    const w = await worker(cluster);
    const lines = Array.from({ length: 50 }, (_, i) => chatLine(`b-${i}`, { content: "x".repeat(i * 10) }));
    const created = await submitBatch(url, lines);
    const done = await waitForStatus(url, created.id, ["completed", "failed"]);
    expect(done.request_counts).toEqual({ total: 50, completed: 50, failed: 0 });
    expect(w.leases.length).toBeGreaterThan(5);
    for (const l of w.leases) {
      const bytes = l.lines.reduce((n, x) => n + x.bodyJson.length, 0);
      expect(l.lines.length === 1 || bytes < 1_000 + 700).toBe(true);
    }
    const out = parseJsonl((await api(url, "GET", `/v1/files/${done.output_file_id}/content`)).body as string);
    expect(out.map((l) => l.custom_id)).toEqual(lines.map((_, i) => `b-${i}`));
  });

  it("runs a mixed batch: each lease line carries its url where it differs from the batch endpoint", async () => {
    cluster = await startCluster({ shardLines: 4 });
    const url = cluster.url();
    const w = await worker(cluster, {
      respond: ({ customId, body }) => ({ body: { object: "prompt" in body ? "text_completion" : "chat.completion", custom_id: customId } }),
    });
    const lines = Array.from({ length: 10 }, (_, i) => (i % 3 === 1 ? chatLine(`m-${i}`) : completionLine(`m-${i}`)));
    const created = await submitBatch(url, lines, { endpoint: "/v1/completions" });
    expect(created.endpoint).toBe("/v1/completions");
    const done = await waitForStatus(url, created.id, ["completed", "failed"]);
    expect(done.errors).toBeNull();
    expect(done.endpoint).toBe("/v1/completions");
    expect(done.request_counts).toEqual({ total: 10, completed: 10, failed: 0 });
    const leased = w.leases.flatMap((l) => {
      expect(l.endpoint).toBe("/v1/completions");
      return l.lines.map((x) => [Number(x.lineIndex), x.url]);
    });
    expect(leased.sort((a, b) => (a[0] as number) - (b[0] as number))).toEqual(
      Array.from({ length: 10 }, (_, i) => [i, i % 3 === 1 ? "/v1/chat/completions" : ""]),
    );
    const out = parseJsonl((await api(url, "GET", `/v1/files/${done.output_file_id}/content`)).body as string);
    expect(out.map((l) => [l.custom_id, l.response.body.object])).toEqual(
      Array.from({ length: 10 }, (_, i) => [`m-${i}`, i % 3 === 1 ? "chat.completion" : "text_completion"]),
    );
  });

  it("with strictEndpoint, a mixed file fails validation with mismatched_endpoint, as OpenAI's API does", async () => {
    cluster = await startCluster({ strictEndpoint: true });
    const url = cluster.url();
    await worker(cluster);
    const created = await submitBatch(url, [chatLine("s-0"), completionLine("s-1"), chatLine("s-2")]);
    const done = await waitForStatus(url, created.id, ["completed", "failed"]);
    expect(done.status).toBe("failed");
    expect(done.errors.data).toEqual([{ code: "mismatched_endpoint", message: expect.any(String), param: "url", line: 2 }]);
  });
});
