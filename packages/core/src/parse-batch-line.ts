// One line of a batch input file: {"custom_id", "method": "POST", "url", "body"}.
// Per-line checks only; checks across lines (duplicate custom_id, one model per batch,
// a model the fleet serves, url matching the batch endpoint) belong to ingest.
import { isBatchgenError } from "./errors.js";
import { BatchErrorCodes, isBatchEndpoint, type BatchInputLine, BATCH_ENDPOINTS } from "./openai.js";
import { parseRequestBody, type ParsedRequest } from "./request-body.js";

export type ParseBatchLineResult =
  | { ok: true; line: BatchInputLine; request: ParsedRequest }
  | { ok: false; code: string; message: string; param: string | null; line: number };

export const MAX_CUSTOM_ID_LENGTH = 512;

/** Parse one input line (lineNumber is 1-based and is echoed in a failure). */
export function parseBatchLine(text: string, lineNumber: number): ParseBatchLineResult {
  const fail = (code: string, message: string, param: string | null = null): ParseBatchLineResult => ({
    ok: false,
    code,
    message,
    param,
    line: lineNumber,
  });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return fail(BatchErrorCodes.invalidJsonLine, "This line is not parseable as valid JSON.");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return fail(BatchErrorCodes.invalidJsonLine, "This line must be a JSON object.");
  }
  const obj = value as Record<string, unknown>;
  for (const key of ["custom_id", "method", "url", "body"]) {
    if (obj[key] === undefined || obj[key] === null) {
      return fail(BatchErrorCodes.missingRequiredParameter, `Missing required parameter: '${key}'.`, key);
    }
  }
  if (typeof obj.custom_id !== "string" || obj.custom_id.length === 0) {
    return fail(BatchErrorCodes.invalidRequest, "'custom_id' must be a non-empty string.", "custom_id");
  }
  if (obj.custom_id.length > MAX_CUSTOM_ID_LENGTH) {
    return fail(BatchErrorCodes.invalidRequest, `'custom_id' must be at most ${MAX_CUSTOM_ID_LENGTH} characters.`, "custom_id");
  }
  if (obj.method !== "POST") {
    return fail(BatchErrorCodes.invalidMethod, `'method' must be "POST", got ${JSON.stringify(obj.method)}.`, "method");
  }
  if (!isBatchEndpoint(obj.url)) {
    return fail(
      BatchErrorCodes.invalidUrl,
      `'url' must be one of ${BATCH_ENDPOINTS.join(", ")}; got ${JSON.stringify(obj.url)}.`,
      "url",
    );
  }
  if (typeof obj.body !== "object" || Array.isArray(obj.body)) {
    return fail(BatchErrorCodes.invalidRequest, "'body' must be a JSON object.", "body");
  }
  try {
    const request = parseRequestBody(obj.url, obj.body);
    const line: BatchInputLine = {
      custom_id: obj.custom_id,
      method: "POST",
      url: obj.url,
      body: obj.body as Record<string, unknown>,
    };
    return { ok: true, line, request };
  } catch (err) {
    if (!isBatchgenError(err)) throw err;
    const param = err.param === undefined ? null : err.param === "body" ? "body" : `body.${err.param}`;
    return fail(err.reason ?? BatchErrorCodes.invalidRequest, err.message, param);
  }
}
