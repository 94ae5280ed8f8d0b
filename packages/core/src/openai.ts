// The OpenAI Batch API line and object formats, as the official SDKs expect them.
// Extensions beyond OpenAI are optional fields and say so.

export type BatchEndpoint = "/v1/chat/completions" | "/v1/completions" | "/v1/embeddings" | "/v1/responses";
export const BATCH_ENDPOINTS: readonly BatchEndpoint[] = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"];

export function isBatchEndpoint(url: unknown): url is BatchEndpoint {
  return (BATCH_ENDPOINTS as readonly unknown[]).includes(url);
}

export interface BatchInputLine {
  custom_id: string;
  method: "POST";
  url: BatchEndpoint;
  body: Record<string, unknown>;
}

export interface BatchOutputLine {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: unknown } | null;
  error: { code: string; message: string } | null;
}

export type BatchStatus =
  | "validating"
  | "failed"
  | "in_progress"
  | "finalizing"
  | "completed"
  | "expired"
  | "cancelling"
  | "cancelled";

export const BATCH_STATUSES: readonly BatchStatus[] = [
  "validating",
  "failed",
  "in_progress",
  "finalizing",
  "completed",
  "expired",
  "cancelling",
  "cancelled",
];

/** Statuses a batch never leaves. */
export const TERMINAL_BATCH_STATUSES: readonly BatchStatus[] = ["failed", "completed", "expired", "cancelled"];

export function isTerminalBatchStatus(status: BatchStatus): boolean {
  return TERMINAL_BATCH_STATUSES.includes(status);
}

/** One entry of a batch's `errors.data` (line is 1-based, as OpenAI reports it). */
export interface BatchError {
  code: string;
  message: string;
  param: string | null;
  line: number | null;
}

export interface BatchProgress {
  lines_done: number;
  prompt_tokens: number;
  completion_tokens: number;
  /** Of prompt_tokens: served from the engines' prefix caches, and computed. */
  prompt_tokens_cached?: number;
  prompt_tokens_computed?: number;
  tokens_per_second: number;
  eta_seconds: number | null;
}

export interface BatchObject {
  id: string;
  object: "batch";
  endpoint: string;
  errors: { object: "list"; data: BatchError[] } | null;
  input_file_id: string;
  completion_window: string;
  status: BatchStatus;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number | null;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  request_counts: { total: number; completed: number; failed: number };
  metadata: Record<string, string> | null;
  /** Extension: progress while the batch runs. */
  progress?: BatchProgress;
}

export interface FileObject {
  id: string;
  object: "file";
  bytes: number;
  created_at: number;
  filename: string;
  purpose: string;
  status?: "processed" | "error";
  expires_at?: number | null;
}

/** `usage` of a completion response body. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/**
 * Codes of line-level batch validation errors, as OpenAI reports them in a failed
 * batch's `errors.data`. parseBatchLine returns the per-line ones; the coordinator uses
 * the cross-line ones (duplicates, model checks, empty file, size limits).
 */
export const BatchErrorCodes = {
  invalidJsonLine: "invalid_json_line",
  /** A line whose bytes are not valid UTF-8 (never decoded with replacement characters). */
  invalidUtf8: "invalid_utf8",
  missingRequiredParameter: "missing_required_parameter",
  invalidUrl: "invalid_url",
  invalidMethod: "invalid_method",
  invalidRequest: "invalid_request",
  duplicateCustomId: "duplicate_custom_id",
  mismatchedModel: "mismatched_model",
  modelNotFound: "model_not_found",
  mismatchedEndpoint: "mismatched_endpoint",
  emptyFile: "empty_file",
  lineTooLarge: "line_too_large",
  tokenLimitExceeded: "token_limit_exceeded",
  invalidPurpose: "invalid_purpose",
} as const;
