// The console's client of the coordinator's public API, with the API key the user gave
// (kept in this browser's localStorage), the same calls any client makes.

export interface Batch {
  id: string;
  status: string;
  endpoint: string;
  model?: string | null;
  created_at: number;
  in_progress_at: number | null;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  output_file_id: string | null;
  error_file_id: string | null;
  errors: { data: Array<{ code: string; message: string; line: number | null }> } | null;
  request_counts: { total: number; completed: number; failed: number };
  metadata: Record<string, string> | null;
  progress?: { lines_done: number; prompt_tokens: number; completion_tokens: number; tokens_per_second: number; eta_seconds: number | null } | null;
}

export interface FleetWorker {
  id: string;
  model: string;
  device: string;
  engine: string;
  tokens_per_second: number;
  requests_running: number;
  requests_waiting: number;
  kv_blocks_used: number;
  kv_blocks_total: number;
  /** LoRA adapters served on the model and those in a device slot now (absent from older coordinators). */
  adapters?: string[];
  adapters_loaded?: string[];
  leases: number;
  last_heartbeat_at: number;
}

const KEY = "batchgen.apiKey";

export function apiKey(): string {
  return localStorage.getItem(KEY) ?? "";
}

export function setApiKey(key: string): void {
  localStorage.setItem(KEY, key);
}

export class ApiError extends Error {}

async function call(method: string, path: string): Promise<Response> {
  const res = await fetch(path, { method, headers: { authorization: `Bearer ${apiKey()}` } });
  if (!res.ok) {
    const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
    throw new ApiError(res.status === 401 ? "The API key was refused: enter yours above." : (body?.error?.message ?? `HTTP ${res.status}`));
  }
  return res;
}

export const listBatches = async (): Promise<Batch[]> => ((await (await call("GET", "/v1/batches?limit=50")).json()) as { data: Batch[] }).data;
export const getBatch = async (id: string): Promise<Batch> => (await (await call("GET", `/v1/batches/${encodeURIComponent(id)}`)).json()) as Batch;
export const cancelBatch = async (id: string): Promise<Batch> => (await (await call("POST", `/v1/batches/${encodeURIComponent(id)}/cancel`)).json()) as Batch;
export const listFleet = async (): Promise<FleetWorker[]> => ((await (await call("GET", "/v1/fleet")).json()) as { data: FleetWorker[] }).data;

/** The first `maxLines` lines of a file (reads only as much of it as that takes). */
export async function fileHead(id: string, maxLines: number): Promise<string[]> {
  const res = await call("GET", `/v1/files/${encodeURIComponent(id)}/content`);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (text.split("\n").length <= maxLines) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  await reader.cancel().catch(() => undefined);
  return text.split("\n").filter((l) => l.trim() !== "").slice(0, maxLines);
}

/** Saves a file's content as `name` (fetched with the key: a plain link cannot carry it). */
export async function download(id: string, name: string): Promise<void> {
  const blob = await (await call("GET", `/v1/files/${encodeURIComponent(id)}/content`)).blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
