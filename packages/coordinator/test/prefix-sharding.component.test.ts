// Prefix-aware sharding through the whole coordinator (real Redis, filesystem store,
// scripted gRPC workers): lines whose prompts share a lead are packed into the same
// shards, output stays in input order with every line once, a re-leased packed shard
// skips the lines already persisted, the batch's progress counts cached prompt tokens, and
// a skip_invalid_lines batch keeps its invalid lines out of every lease.
import { afterEach, describe, expect, it } from "vitest";
import { ScriptedFleet } from "./support/scripted-fleet.js";
import { api, MODEL, parseJsonl, startCluster, submitBatch, waitFor, waitForStatus, type Cluster } from "./support/harness.js";

let cluster: Cluster | null = null;
const fleet = new ScriptedFleet({ credit: 512 });
const worker = fleet.start.bind(fleet);

afterEach(async () => {
  fleet.killAll();
  await cluster?.stop();
  cluster = null;
});

const SYSTEMS = ["You translate into French. ", "You grade essays. ", "You summarise news. ", "You write haiku. "].map((s) => s.repeat(20));

// Line i: system prompt i % 4 (every 7th line a one-off prompt with no shared system prompt).
function line(i: number): string {
  const messages = i % 7 === 3 ? [{ role: "user", content: `alone ${i}` }] : [{ role: "system", content: SYSTEMS[i % 4]! }, { role: "user", content: `question ${i}` }];
  return JSON.stringify({ custom_id: `p-${i}`, method: "POST", url: "/v1/chat/completions", body: { model: MODEL, messages, max_tokens: 4 } });
}

function systemOf(bodyJson: string): string {
  const body = JSON.parse(bodyJson) as { messages: Array<{ role: string; content: string }> };
  return body.messages.length > 1 ? body.messages[0]!.content : `one-off:${body.messages[0]!.content}`;
}

async function outputIds(url: string, fileId: string | null): Promise<string[]> {
  if (!fileId) return [];
  return parseJsonl((await api(url, "GET", `/v1/files/${fileId}/content`)).body as string).map((l) => l.custom_id);
}

describe("prefix-aware sharding (component)", () => {
  it("packs lines with the same leading messages into the same shards; output in input order, each line once", async () => {
    cluster = await startCluster({ shardLines: 8, prefixWindowLines: 64 });
    const url = cluster.url();
    const w = await worker(cluster, {
      respond: ({ customId, lineIndex }) => ({
        body: { object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content: customId }, finish_reason: "stop" }], usage: { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 }, line: lineIndex },
      }),
    });
    const lines = Array.from({ length: 150 }, (_, i) => line(i));
    const b = await submitBatch(url, lines);
    const done = await waitForStatus(url, b.id, ["completed", "failed"]);
    expect(done.errors).toBeNull();
    expect(done.request_counts).toEqual({ total: 150, completed: 150, failed: 0 });
    expect(await outputIds(url, done.output_file_id)).toEqual(lines.map((_, i) => `p-${i}`));

    // Every line leased once; a shard holds one system prompt, bar the one-off lines
    // and a key's remainder packed beside another's.
    const leased = w.leases.flatMap((l) => l.lines.map((x) => Number(x.lineIndex)));
    expect(leased.sort((a, c) => a - c)).toEqual(lines.map((_, i) => i));
    let shared = 0;
    for (const l of w.leases) {
      const systems = new Set(l.lines.map((x) => systemOf(x.bodyJson)).filter((s) => !s.startsWith("one-off:")));
      expect(systems.size, `lease of shard ${l.shardIndex}`).toBeLessThanOrEqual(2);
      if (systems.size === 1 && l.lines.length === 8) shared++;
      // A window's lines only: 64-line windows.
      const window = new Set(l.lines.map((x) => Math.floor(Number(x.lineIndex) / 64)));
      expect(window.size).toBe(1);
    }
    // Per window, each of the 4 prompts has ~14 lines: at least one full shard of it.
    expect(shared).toBeGreaterThanOrEqual(8);
  });

  it("a packed shard re-leased after a worker dies carries only the lines not yet persisted", async () => {
    cluster = await startCluster({ shardLines: 32, prefixWindowLines: 128, ackEvery: 5 });
    const url = cluster.url();
    const dying = await worker(cluster, { credit: 32, maxResults: 11 });
    const lines = Array.from({ length: 128 }, (_, i) => line(i));
    const b = await submitBatch(url, lines);
    await waitFor("11 results sent", async () => dying.resultsSent === 11);
    await new Promise((r) => setTimeout(r, 300));
    const persisted = [...dying.acked];
    const first = dying.leases[0]!;
    dying.kill();

    const next = await worker(cluster, { credit: 512 });
    const done = await waitForStatus(url, b.id, ["completed"], undefined, 20_000);
    expect(done.request_counts).toEqual({ total: 128, completed: 128, failed: 0 });
    expect(await outputIds(url, done.output_file_id)).toEqual(lines.map((_, i) => `p-${i}`));
    const again = next.leases.find((l) => l.shardIndex === first.shardIndex)!;
    const firstLines = first.lines.map((l) => Number(l.lineIndex));
    expect(again.lines.map((l) => Number(l.lineIndex)).sort((a, c) => a - c)).toEqual(firstLines.filter((l) => !persisted.includes(l)).sort((a, c) => a - c));
    // The shard was packed: its lines are not one run of consecutive lines.
    expect(Math.max(...firstLines) - Math.min(...firstLines) + 1).toBeGreaterThan(firstLines.length);
  });

  it("counts prompt tokens served from the engines' caches per batch", async () => {
    cluster = await startCluster({ shardLines: 16 });
    const url = cluster.url();
    await worker(cluster, { cachedTokens: (lineIndex: number) => (lineIndex % 2 ? 3 : 0) });
    const b = await submitBatch(url, Array.from({ length: 20 }, (_, i) => line(i)));
    const done = await waitForStatus(url, b.id, ["completed"]);
    expect(done.progress).toMatchObject({ prompt_tokens: 60, prompt_tokens_cached: 30, prompt_tokens_computed: 30 });
    expect(done.usage.input_tokens_details.cached_tokens).toBe(30);
    const metrics = await fetch(`${url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/batchgen_coordinator_tokens_completed_total\{kind="prompt_cached"\} 30/);
  });

  it("skip_invalid_lines with packing: invalid lines stay line errors, every valid line answered once, in input order", async () => {
    cluster = await startCluster({ shardLines: 8, prefixWindowLines: 32 });
    const url = cluster.url();
    const w = await worker(cluster, { cachedTokens: (lineIndex: number) => (lineIndex % 3 === 0 ? 1 : 0) });
    const lines = Array.from({ length: 70 }, (_, i) => line(i));
    // Three invalid lines, in two windows, among lines of four shared system prompts.
    const bad = new Map<number, string>([
      [5, "invalid_json_line"],
      [21, "duplicate_custom_id"],
      [40, "mismatched_model"],
    ]);
    lines[5] = "{not json";
    lines[21] = JSON.stringify({ custom_id: "p-2", method: "POST", url: "/v1/chat/completions", body: { model: MODEL, messages: [{ role: "system", content: SYSTEMS[1]! }, { role: "user", content: "dup" }] } });
    lines[40] = JSON.stringify({ custom_id: "p-40", method: "POST", url: "/v1/chat/completions", body: { model: "other-model", messages: [{ role: "system", content: SYSTEMS[0]! }, { role: "user", content: "q" }] } });
    const b = await submitBatch(url, lines, { metadata: { skip_invalid_lines: "true" } });
    const done = await waitForStatus(url, b.id, ["completed", "failed"]);
    expect(done.status, JSON.stringify(done.errors)).toBe("completed");
    expect(done.request_counts).toEqual({ total: 70, completed: 67, failed: 3 });
    const valid = lines.map((_, i) => i).filter((i) => !bad.has(i));
    expect(await outputIds(url, done.output_file_id)).toEqual(valid.map((i) => `p-${i}`));

    const errors = parseJsonl((await api(url, "GET", `/v1/files/${done.error_file_id}/content`)).body as string) as Array<{ custom_id: string | null; error: { code: string; line: number } }>;
    expect(errors.map((e) => [e.error.line, e.error.code])).toEqual([...bad].map(([i, code]) => [i + 1, code]));
    // No worker saw an invalid line, every valid one leased once; the shards were packed.
    const leased = w.leases.flatMap((l) => l.lines.map((x) => Number(x.lineIndex))).sort((a, c) => a - c);
    expect(leased).toEqual(valid);
    expect(w.leases.some((l) => {
      const ls = l.lines.map((x) => Number(x.lineIndex));
      return Math.max(...ls) - Math.min(...ls) + 1 > ls.length + 1;
    })).toBe(true);
    // Usage counts the lines that ran only (3 prompt, 2 completion tokens each).
    expect(done.usage).toMatchObject({ input_tokens: 3 * 67, output_tokens: 2 * 67 });
    expect(done.progress).toMatchObject({ prompt_tokens: 3 * 67, prompt_tokens_cached: valid.filter((i) => i % 3 === 0).length });
  });
});
