// Runs a batch file through the coordinator's HTTP API (the OpenAI Files + Batches API):
// upload, create, poll until it ends, download output.jsonl and check every line.
// The batch's speed is its output tokens over the time from in_progress to completed,
// both seen by polling every pollMs (so each end is known to within pollMs).
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

async function api(url, apiKey, path, init = {}) {
  const res = await fetch(`${url}${path}`, { ...init, headers: { authorization: `Bearer ${apiKey}`, ...(init.headers ?? {}) } });
  const text = await res.text();
  if (!res.ok) throw new Error(`${init.method ?? "GET"} ${path}: HTTP ${res.status}: ${text.slice(0, 500)}`);
  return text;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ENDED = new Set(["completed", "failed", "expired", "cancelled"]);

/**
 * Submits `input` and waits. Throws when the batch does not complete or any line is
 * missing, failed, or has other than expectTokens completion tokens (when given).
 */
export async function submitBatch({ url, apiKey, input, endpoint, pollMs, timeoutS, expectPromptTokens, expectTokens, expectInputMaxTokens, log }) {
  const content = readFileSync(input);
  // custom_id -> the line's max_tokens (expectInputMaxTokens: each line must produce exactly that).
  const wantedTokens = new Map(
    content
      .toString("utf8")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l))
      .map((l) => [l.custom_id, l.body.max_tokens]),
  );
  const wanted = new Set(wantedTokens.keys());

  const tUpload = performance.now();
  const form = new FormData();
  form.append("purpose", "batch");
  form.append("file", new Blob([content], { type: "application/jsonl" }), "pipeline-batch.jsonl");
  const file = JSON.parse(await api(url, apiKey, "/v1/files", { method: "POST", body: form }));
  const tCreate = performance.now();
  let batch = JSON.parse(
    await api(url, apiKey, "/v1/batches", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input_file_id: file.id, endpoint, completion_window: "24h" }),
    }),
  );
  log(`submit: file ${file.id} (${content.length} bytes) uploaded in ${((tCreate - tUpload) / 1000).toFixed(2)} s; batch ${batch.id} ${batch.status}`);

  const seen = {};
  const deadline = tCreate + timeoutS * 1000;
  let lastLog = 0;
  for (;;) {
    const now = performance.now();
    if (batch.status !== "validating") seen.in_progress ??= now;
    if (batch.status === "finalizing" || ENDED.has(batch.status)) seen.finalizing ??= now;
    if (ENDED.has(batch.status)) {
      seen.ended = now;
      break;
    }
    if (now > deadline) throw new Error(`batch ${batch.id} still ${batch.status} after ${timeoutS} s`);
    if (now - lastLog > 5000) {
      lastLog = now;
      const p = batch.progress ?? {};
      log(`submit: ${batch.status} ${p.lines_done ?? 0}/${batch.request_counts?.total ?? "?"} lines, ${p.completion_tokens ?? 0} tokens, ${p.tokens_per_second ?? 0} tok/s`);
    }
    await sleep(pollMs);
    batch = JSON.parse(await api(url, apiKey, `/v1/batches/${batch.id}`));
  }
  if (batch.status !== "completed") {
    throw new Error(`batch ${batch.id} ended ${batch.status}: ${JSON.stringify(batch.errors ?? null)}`);
  }
  const counts = batch.request_counts;
  log(`submit: completed ${counts.completed}/${counts.total} (failed ${counts.failed}); output ${batch.output_file_id}, errors ${batch.error_file_id}`);

  // Every line back, once, with a 200 response and the expected token counts.
  const output = await api(url, apiKey, `/v1/files/${batch.output_file_id}/content`);
  const got = new Set();
  let completionTokens = 0;
  let promptTokens = 0;
  const problems = [];
  for (const text of output.split("\n")) {
    if (text.trim() === "") continue;
    const line = JSON.parse(text);
    if (got.has(line.custom_id)) problems.push(`${line.custom_id}: twice in the output`);
    got.add(line.custom_id);
    const body = line.response?.body;
    if (line.response?.status_code !== 200 || !body?.usage) {
      problems.push(`${line.custom_id}: ${JSON.stringify(line.error ?? line.response).slice(0, 200)}`);
      continue;
    }
    completionTokens += body.usage.completion_tokens;
    promptTokens += body.usage.prompt_tokens;
    if (expectTokens !== undefined && body.usage.completion_tokens !== expectTokens) {
      problems.push(`${line.custom_id}: ${body.usage.completion_tokens} completion tokens, expected ${expectTokens} (${body.choices?.[0]?.finish_reason})`);
    }
    if (expectInputMaxTokens && body.usage.completion_tokens !== wantedTokens.get(line.custom_id)) {
      problems.push(`${line.custom_id}: ${body.usage.completion_tokens} completion tokens, its max_tokens is ${wantedTokens.get(line.custom_id)}`);
    }
    if (expectPromptTokens !== undefined && body.usage.prompt_tokens !== expectPromptTokens) {
      problems.push(`${line.custom_id}: ${body.usage.prompt_tokens} prompt tokens, expected ${expectPromptTokens}`);
    }
  }
  for (const id of wanted) if (!got.has(id)) problems.push(`${id}: missing from the output`);
  if (counts.completed !== wanted.size || counts.failed !== 0) problems.push(`request_counts ${JSON.stringify(counts)} for ${wanted.size} lines`);
  if (batch.usage?.output_tokens !== completionTokens) {
    problems.push(`batch usage.output_tokens ${batch.usage?.output_tokens} != ${completionTokens} summed over the output`);
  }
  if (problems.length > 0) throw new Error(`the batch output is wrong (${problems.length} problems):\n  ${problems.slice(0, 20).join("\n  ")}`);

  const secs = (seen.ended - seen.in_progress) / 1000;
  return {
    batch_id: batch.id,
    lines: got.size,
    prompt_tokens: promptTokens,
    // Of those, served from the engines' prefix caches (the batch's progress).
    prompt_tokens_cached: batch.progress?.prompt_tokens_cached ?? null,
    prompt_tokens_computed: batch.progress?.prompt_tokens_computed ?? null,
    completion_tokens: completionTokens,
    // The figure: output tokens over in_progress -> completed (finalization included).
    secs,
    out_tok_s: completionTokens / secs,
    // The coordinator's own in_progress -> finalizing rate (ms timestamps, rounded to 0.1).
    coordinator_tok_s: batch.progress?.tokens_per_second ?? null,
    secs_to_finalizing: (seen.finalizing - seen.in_progress) / 1000,
    secs_submit_to_completed: (seen.ended - tUpload) / 1000,
    upload_secs: (tCreate - tUpload) / 1000,
    poll_ms: pollMs,
  };
}
