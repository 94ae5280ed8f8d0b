// Small helpers of the HTTP API: JSON in and out, OpenAI-shaped errors.
import type { IncomingMessage, ServerResponse } from "node:http";
import { BatchgenError, httpStatusOf, toBatchgenError, toOpenAIErrorBody } from "@batchgen/core";

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
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limitBytes) throw new BatchgenError("invalid_request", `The request body exceeds ${limitBytes} bytes.`);
    chunks.push(chunk);
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
