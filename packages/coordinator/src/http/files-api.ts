// POST /v1/files (multipart/form-data, purpose=batch; the file part is streamed straight
// into object storage), GET /v1/files/{id}, GET /v1/files/{id}/content (streamed).
import type { IncomingMessage, ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import { BatchErrorCodes, BatchgenError, newId, type ObjectStore } from "@batchgen/core";
import busboy from "busboy";
import { fileView } from "../batch-view.js";
import type { FileRecord, JobStore } from "../job-store.js";
import { notFound, sendJson } from "./http-io.js";

export interface FilesApiDeps {
  store: JobStore;
  objects: ObjectStore;
  maxFileBytes: number;
}

export function inputFileKey(fileId: string): string {
  return `files/${fileId}`;
}

export class FilesApi {
  constructor(private readonly deps: FilesApiDeps) {}

  async getOwned(tenant: string, id: string): Promise<FileRecord> {
    const file = await this.deps.store.getFile(id);
    if (!file || file.tenant !== tenant) throw notFound("file", id);
    return file;
  }

  async create(req: IncomingMessage, res: ServerResponse, tenant: string): Promise<void> {
    const type = req.headers["content-type"] ?? "";
    if (!/^multipart\/form-data/i.test(type)) {
      throw new BatchgenError("invalid_request", "Upload a file as multipart/form-data with fields 'file' and 'purpose'.");
    }
    const { objects, store, maxFileBytes } = this.deps;
    const id = newId("file");
    const key = inputFileKey(id);
    let purpose: string | undefined;
    let filename = "";
    const sink: { upload: Promise<{ size: number }> | null } = { upload: null };
    let uploadError: unknown = null;
    let tooLarge = false;

    const bb = busboy({ headers: req.headers, limits: { files: 1, fileSize: maxFileBytes, fields: 32, fieldSize: 64 * 1024 } });
    const parsed = new Promise<void>((resolve, reject) => {
      bb.on("field", (name: string, value: string) => {
        if (name === "purpose") purpose = value;
      });
      bb.on("file", (name: string, stream: NodeJS.ReadableStream & { resume(): void }, info: { filename: string }) => {
        if (name !== "file" || sink.upload) {
          stream.resume();
          return;
        }
        filename = info.filename || "upload.jsonl";
        stream.on("limit", () => {
          tooLarge = true;
        });
        sink.upload = objects.upload(key, stream);
        // A failed upload stops reading; drain the rest so the form still parses to its end.
        sink.upload.catch((err: unknown) => {
          uploadError = err;
          stream.resume();
        });
      });
      bb.on("close", resolve);
      bb.on("error", reject);
      req.on("aborted", () => reject(new BatchgenError("cancelled", "The upload was aborted.")));
    });
    req.pipe(bb);
    let size = 0;
    try {
      await parsed;
      if (sink.upload) size = (await sink.upload).size;
    } catch (err) {
      await sink.upload?.catch(() => undefined);
      await objects.delete(key).catch(() => undefined);
      if (uploadError && err === uploadError) throw storeFailure(uploadError);
      if (err instanceof BatchgenError) throw err;
      throw new BatchgenError("invalid_request", "The multipart body could not be parsed.", { cause: err });
    }
    const reject = async (err: BatchgenError): Promise<never> => {
      await objects.delete(key).catch(() => undefined);
      throw err;
    };
    if (uploadError) return reject(storeFailure(uploadError));
    if (!sink.upload) {
      return reject(
        new BatchgenError("invalid_request", "Missing required parameter: 'file'.", { param: "file", reason: "missing_required_parameter" }),
      );
    }
    if (purpose === undefined) {
      return reject(
        new BatchgenError("invalid_request", "Missing required parameter: 'purpose'.", {
          param: "purpose",
          reason: "missing_required_parameter",
        }),
      );
    }
    if (purpose !== "batch") {
      return reject(
        new BatchgenError("invalid_request", `'${purpose}' is not a supported purpose: this server accepts 'batch' only.`, {
          param: "purpose",
          reason: BatchErrorCodes.invalidPurpose,
        }),
      );
    }
    if (tooLarge) {
      return reject(
        new BatchgenError("invalid_request", `The file exceeds the maximum size of ${maxFileBytes} bytes.`, { param: "file" }),
      );
    }
    const file: FileRecord = { id, tenant, bytes: size, createdAtMs: Date.now(), filename, purpose, key };
    // Without its record the object could never be reached: remove it (Redis down answers 503).
    await store.createFile(file).catch((err: unknown) => reject(err instanceof BatchgenError ? err : new BatchgenError("unavailable", "Recording the file failed; please retry.", { cause: err })));
    sendJson(res, 200, fileView(file));
  }

  async retrieve(res: ServerResponse, tenant: string, id: string): Promise<void> {
    sendJson(res, 200, fileView(await this.getOwned(tenant, id)));
  }

  async content(res: ServerResponse, tenant: string, id: string): Promise<void> {
    const file = await this.getOwned(tenant, id);
    const body = await this.deps.objects.get(file.key);
    res.writeHead(200, {
      "content-type": "application/octet-stream",
      "content-length": String(file.bytes),
      "content-disposition": `attachment; filename="${file.filename.replace(/["\\\r\n]/g, "_")}"`,
    });
    // A client that hangs up mid-download is no server error.
    await pipeline(body, res).catch(() => undefined);
  }
}

/** A failed store write as the client sees it: 507 when the store is full, else 503; the store's words stay in the cause. */
function storeFailure(err: unknown): BatchgenError {
  if (err instanceof BatchgenError && err.code === "insufficient_storage") {
    return new BatchgenError("insufficient_storage", "The object store is full; the file was not stored.", { cause: err });
  }
  return new BatchgenError("unavailable", "Storing the file failed; please retry.", { cause: err });
}
