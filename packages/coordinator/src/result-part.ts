// Results are persisted per shard in parts: batches/<batch>/parts/<shard>/<time>-<lease>-<seq>.jsonl.
// A part line is "<line index>\t<1 response | 0 error>\t<the OpenAI output line JSON>", so the
// finalizer can order and dedupe by line index without parsing bodies. Part names sort
// by shard, then by the time they were written: the first part holding a line wins.
import { newId } from "@batchgen/core";

export interface PartLine {
  line: number;
  ok: boolean;
  /** The OpenAI batch output line, one line of JSON. */
  json: string;
}

const SHARD_DIGITS = 8;
const TIME_DIGITS = 15;

export function partsPrefix(batchId: string): string {
  return `batches/${batchId}/parts/`;
}

export function shardOfPartKey(batchId: string, key: string): number {
  const rest = key.slice(partsPrefix(batchId).length);
  return Number(rest.slice(0, rest.indexOf("/")));
}

export function partKey(batchId: string, shard: number, leaseId: string, seq: number, nowMs: number = Date.now()): string {
  const s = String(shard).padStart(SHARD_DIGITS, "0");
  const t = String(nowMs).padStart(TIME_DIGITS, "0");
  return `${partsPrefix(batchId)}${s}/${t}-${leaseId}-${String(seq).padStart(6, "0")}.jsonl`;
}

/** Ids of an output line: unique per (lease, line), so no random bytes per result. */
export function lineIds(leaseId: string, line: number): { id: string; requestId: string } {
  const hex = leaseId.slice(leaseId.indexOf("_") + 1) + line.toString(16).padStart(8, "0");
  return { id: `batch_req_${hex}`, requestId: `req_${hex}` };
}

/**
 * A response line. `bodyJson` must parse; JSON text without raw line breaks is embedded
 * as it is (a line break in JSON text is always whitespace), other text re-serialised,
 * so the output stays one valid JSON line.
 */
export function responseLine(ids: { id: string; requestId: string }, customId: string, statusCode: number, bodyJson: string): string {
  const body = JSON.parse(bodyJson) as unknown;
  const bodyText = /[\r\n]/.test(bodyJson) ? JSON.stringify(body) : bodyJson.trim();
  return (
    `{"id":${JSON.stringify(ids.id)},"custom_id":${JSON.stringify(customId)},` +
    `"response":{"status_code":${statusCode},"request_id":${JSON.stringify(ids.requestId)},"body":${bodyText}},"error":null}`
  );
}

export function errorLine(ids: { id: string; requestId: string } | null, customId: string, code: string, message: string): string {
  const id = ids?.id ?? "batch_req_" + newId("req").slice("req_".length);
  return JSON.stringify({ id, custom_id: customId, response: null, error: { code, message } });
}

/** The error-file line of an input line left out of the run (skip_invalid_lines), with its line number. */
export function invalidLineError(customId: string | null, code: string, message: string, param: string | null, line: number): string {
  const id = "batch_req_" + newId("req").slice("req_".length);
  return JSON.stringify({ id, custom_id: customId, response: null, error: { code, message, param, line } });
}

export function encodePart(lines: readonly PartLine[]): string {
  let out = "";
  for (const l of lines) out += `${l.line}\t${l.ok ? 1 : 0}\t${l.json}\n`;
  return out;
}

export function* decodePart(text: string): Generator<PartLine> {
  let pos = 0;
  while (pos < text.length) {
    let end = text.indexOf("\n", pos);
    if (end < 0) end = text.length;
    const t1 = text.indexOf("\t", pos);
    const t2 = t1 < 0 ? -1 : text.indexOf("\t", t1 + 1);
    if (t1 > pos && t2 > t1 && t2 < end) {
      yield { line: Number(text.slice(pos, t1)), ok: text.slice(t1 + 1, t2) === "1", json: text.slice(t2 + 1, end) };
    }
    pos = end + 1;
  }
}
