// Small helpers of the HTTP API: JSON in and out, OpenAI-shaped errors.
import type { IncomingMessage, ServerResponse } from "node:http";
import { BatchgenError, httpStatusOf, isBatchgenError, toBatchgenError, toOpenAIErrorBody } from "@batchgen/core";

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** The error as OpenAI's error envelope with its HTTP status; never a stack trace. */
export function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, httpStatusOf(toBatchgenError(err).code), toOpenAIErrorBody(err));
}

export async function readJson(req: IncomingMessage, limitBytes: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limitBytes) throw new BatchgenError("payload_too_large", `The request body exceeds ${limitBytes} bytes.`);
      chunks.push(chunk);
    }
  } catch (err) {
    if (isBatchgenError(err)) throw err;
    // The client went away (or a timeout closed the connection) mid-body: no server error.
    throw new BatchgenError("cancelled", "The request was aborted before its body arrived.", { cause: err });
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new BatchgenError("invalid_request", "The request body is not valid JSON.");
  }
}

export function notFound(what: "file" | "batch", id: string): BatchgenError {
  return new BatchgenError("not_found", `No ${what} found with id '${id}'.`, { param: "id" });
}

export const invalid = (message: string, param: string): BatchgenError => new BatchgenError("invalid_request", message, { param });

/** OpenAI's expiry range for files: 1 hour to 30 days. */
export const EXPIRES_AFTER_MIN_S = 3600;
export const EXPIRES_AFTER_MAX_S = 30 * 86_400;

/**
 * `{anchor: "created_at", seconds}` (seconds as a number, or as text from a form field)
 * as seconds; null when absent.
 */
export function parseExpiresAfter(v: unknown, param: string): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== "object" || Array.isArray(v)) throw invalid(`'${param}' must be an object {"anchor": "created_at", "seconds": N}.`, param);
  const { anchor, seconds } = v as Record<string, unknown>;
  if (anchor !== "created_at") throw invalid(`'${param}.anchor' must be 'created_at'.`, `${param}.anchor`);
  const s = typeof seconds === "string" && /^\d{1,10}$/.test(seconds) ? Number(seconds) : seconds;
  if (typeof s !== "number" || !Number.isSafeInteger(s) || s < EXPIRES_AFTER_MIN_S || s > EXPIRES_AFTER_MAX_S) {
    throw invalid(
      `'${param}.seconds' must be an integer from ${EXPIRES_AFTER_MIN_S} (1 hour) to ${EXPIRES_AFTER_MAX_S} (30 days).`,
      `${param}.seconds`,
    );
  }
  return s;
}
