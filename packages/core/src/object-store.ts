// Object storage as the rest of batchgen sees it: keys are "/"-separated paths
// ("batches/<id>/parts/00001.jsonl"); listing is lexicographic by key.
import { BatchgenError } from "./errors.js";

export type UploadBody = AsyncIterable<Uint8Array | string> | NodeJS.ReadableStream;

export interface ObjectStore {
  /** Write a whole (small) object, replacing any object of that key. */
  put(key: string, body: string | Uint8Array): Promise<void>;
  /** Stream a body of any size into the key; the object appears only once complete. */
  upload(key: string, body: UploadBody): Promise<{ size: number }>;
  /** The object's bytes as a stream; throws BatchgenError("not_found"). */
  get(key: string): Promise<NodeJS.ReadableStream>;
  /** A small object's bytes; throws BatchgenError("not_found"). */
  getBytes(key: string): Promise<Buffer>;
  /** Bytes [start, endExclusive), clamped to the object's size; throws BatchgenError("not_found"). */
  getRange(key: string, start: number, endExclusive: number): Promise<Buffer>;
  head(key: string): Promise<{ size: number } | null>;
  /** Keys that start with `prefix`, in lexicographic (byte) order. */
  list(prefix: string): AsyncIterable<string>;
  /** No error if absent. */
  delete(key: string): Promise<void>;
  deletePrefix(prefix: string): Promise<void>;
  /**
   * Remove temp files of writes that never finished (a crash mid-upload) last modified
   * before `beforeMs`; returns how many. Optional: where the store keeps none (S3 drops
   * unfinished multipart uploads itself by a bucket lifecycle rule), it is absent.
   */
  removeStaleTemp?(beforeMs: number): Promise<number>;
  /** Release connections (S3); optional, a no-op where there is nothing to release. */
  close?(): Promise<void>;
}

/** Keys are relative "/"-paths without empty, "." or ".." segments; throws invalid_request otherwise. */
export function checkKey(key: string): string {
  const bad =
    typeof key !== "string" ||
    key.length === 0 ||
    key.length > 1024 ||
    key.startsWith("/") ||
    key.includes("\\") ||
    key.includes("\0") ||
    key.split("/").some((seg) => seg === "" || seg === "." || seg === "..");
  if (bad) throw new BatchgenError("invalid_request", `invalid object key ${JSON.stringify(key)}`, { param: "key" });
  return key;
}

export function checkRange(start: number, endExclusive: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(endExclusive) || start < 0 || endExclusive < start) {
    throw new BatchgenError("invalid_request", `invalid byte range [${start}, ${endExclusive})`, { param: "range" });
  }
}

/** Bytes of an upload body, strings as UTF-8. */
export async function* uploadChunks(body: UploadBody): AsyncGenerator<Buffer> {
  for await (const chunk of body as AsyncIterable<Uint8Array | string>) {
    if (typeof chunk === "string") yield Buffer.from(chunk, "utf8");
    else yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
}

/**
 * uploadChunks(body) that counts its bytes: `size()` is the total once `chunks` is drained.
 * Called when an upload starts: from then on the upload owns the body, and an error of a
 * stream body (even one before the upload reads it) rejects the upload instead of being
 * an unhandled "error" event.
 */
export function countedUploadChunks(body: UploadBody): { chunks: AsyncGenerator<Buffer>; size(): number } {
  if (typeof (body as NodeJS.ReadableStream).on === "function") (body as NodeJS.ReadableStream).on("error", () => undefined);
  let size = 0;
  const chunks = (async function* () {
    for await (const chunk of uploadChunks(body)) {
      size += chunk.length;
      yield chunk;
    }
  })();
  return { chunks, size: () => size };
}
