// Batches as a person reads them in a terminal.
import type { Batch } from "./api-client.js";

const TERMINAL = new Set(["completed", "failed", "expired", "cancelled"]);

export function isTerminal(status: string): boolean {
  return TERMINAL.has(status);
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "?";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function time(unix: number | null | undefined): string | null {
  return unix ? new Date(unix * 1000).toISOString().replace(".000Z", "Z") : null;
}

export function formatBatch(b: Batch): string {
  const counts = b.request_counts;
  const rows: Array<[string, string | null | undefined]> = [
    ["id", b.id],
    ["status", b.status],
    ["endpoint", b.endpoint],
    ["model", b.model ?? null],
    ["requests", `${counts.completed + counts.failed}/${counts.total} done (${counts.completed} ok, ${counts.failed} failed)`],
    ["input file", b.input_file_id],
    ["output file", b.output_file_id],
    ["error file", b.error_file_id],
    ["created", time(b.created_at)],
    ["in progress", time(b.in_progress_at)],
    ["completed", time(b.completed_at)],
    ["failed", time(b.failed_at)],
    ["cancelled", time(b.cancelled_at)],
    ["expired", time(b.expired_at)],
    ["expires", time(b.expires_at)],
  ];
  if (b.progress && !isTerminal(b.status)) {
    const p = b.progress;
    const cached = p.prompt_tokens_cached ? ` (${p.prompt_tokens_cached} cached)` : "";
    rows.push(["tokens", `${p.prompt_tokens} in${cached}, ${p.completion_tokens} out, ${p.tokens_per_second} tok/s`]);
    rows.push(["eta", formatDuration(p.eta_seconds)]);
  } else if (b.progress) {
    rows.push(["tokens", `${b.progress.prompt_tokens} in, ${b.progress.completion_tokens} out`]);
  }
  if (b.metadata && Object.keys(b.metadata).length > 0) {
    rows.push(["metadata", Object.entries(b.metadata).map(([k, v]) => `${k}=${v}`).join(", ")]);
  }
  const lines = rows.filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => `${k.padEnd(12)} ${v}`);
  lines.push(...formatBatchErrors(b));
  return lines.join("\n");
}

export function formatBatchErrors(b: Batch, max = 20): string[] {
  const data = b.errors?.data ?? [];
  if (data.length === 0) return [];
  const out = ["errors:"];
  for (const e of data.slice(0, max)) out.push(`  ${e.line !== null && e.line !== undefined ? `line ${e.line}: ` : ""}${e.message} [${e.code}]`);
  if (data.length > max) out.push(`  ... and ${data.length - max} more`);
  return out;
}

export function formatBatchTable(batches: Batch[]): string {
  if (batches.length === 0) return "no batches";
  const header = ["ID", "STATUS", "MODEL", "DONE", "CREATED"];
  const rows = batches.map((b) => [
    b.id,
    b.status,
    b.model ?? "-",
    `${b.request_counts.completed + b.request_counts.failed}/${b.request_counts.total}`,
    time(b.created_at) ?? "-",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}
