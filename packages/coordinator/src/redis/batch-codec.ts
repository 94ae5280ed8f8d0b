// BatchRecord <-> Redis hash fields. Numbers and strings are stored as text, JSON-valued
// fields as JSON, null as an absent field; the counters (completed, failed, tokens) are
// plain integers so Lua can HINCRBY them.
import type { BatchStatus } from "@batchgen/core";
import type { BatchFields, BatchRecord, StopReason } from "../job-store.js";

type Kind = "string" | "number" | "json";

const FIELDS: Record<keyof Omit<BatchRecord, "id">, [hashField: string, kind: Kind]> = {
  tenant: ["tenant", "string"],
  status: ["status", "string"],
  endpoint: ["endpoint", "string"],
  inputFileId: ["input_file_id", "string"],
  inputKey: ["input_key", "string"],
  completionWindow: ["completion_window", "string"],
  metadata: ["metadata", "json"],
  priority: ["priority", "number"],
  createdAtMs: ["created_at_ms", "number"],
  expiresAtMs: ["expires_at_ms", "number"],
  inProgressAtMs: ["in_progress_at_ms", "number"],
  finalizingAtMs: ["finalizing_at_ms", "number"],
  completedAtMs: ["completed_at_ms", "number"],
  failedAtMs: ["failed_at_ms", "number"],
  expiredAtMs: ["expired_at_ms", "number"],
  cancellingAtMs: ["cancelling_at_ms", "number"],
  cancelledAtMs: ["cancelled_at_ms", "number"],
  outputFileId: ["output_file_id", "string"],
  errorFileId: ["error_file_id", "string"],
  errors: ["errors", "json"],
  model: ["model", "string"],
  adapters: ["adapters", "json"],
  total: ["total", "number"],
  shards: ["shards", "number"],
  shardLines: ["shard_lines", "number"],
  completed: ["completed", "number"],
  failed: ["failed", "number"],
  promptTokens: ["prompt_tokens", "number"],
  completionTokens: ["completion_tokens", "number"],
  promptTokensCached: ["prompt_tokens_cached", "number"],
  stopReason: ["stop_reason", "string"],
  outputExpiresAfterS: ["output_expires_after_s", "number"],
};

const COUNTERS = new Set(["total", "shards", "shardLines", "completed", "failed", "promptTokens", "completionTokens", "promptTokensCached", "priority"]);

/** Hash field/value pairs for the given fields; a null value becomes "" (deleted by the writer). */
export function encodeBatchFields(fields: BatchFields & { status?: BatchStatus }): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(fields)) {
    const spec = FIELDS[name as keyof typeof FIELDS];
    if (!spec || value === undefined) continue;
    const [field, kind] = spec;
    if (value === null) out.push([field, ""]);
    else if (kind === "json") out.push([field, JSON.stringify(value)]);
    else out.push([field, String(value)]);
  }
  return out;
}

export function decodeBatch(id: string, hash: Record<string, string>): BatchRecord | null {
  if (!hash.status) return null;
  const rec: Record<string, unknown> = { id };
  for (const [name, [field, kind]] of Object.entries(FIELDS)) {
    const raw = hash[field];
    if (raw === undefined || raw === "") rec[name] = COUNTERS.has(name) ? 0 : null;
    else if (kind === "number") rec[name] = Number(raw);
    else if (kind === "json") rec[name] = JSON.parse(raw) as unknown;
    else rec[name] = raw;
  }
  rec.stopReason = (rec.stopReason as StopReason | null) ?? null;
  return rec as unknown as BatchRecord;
}
