// The Files API: POST /v1/files (multipart/form-data: purpose=batch, optional
// expires_after; the file part is streamed straight into object storage), GET /v1/files
// (purpose, limit, after, order), GET /v1/files/{id}, GET /v1/files/{id}/content
// (streamed), DELETE /v1/files/{id} (refused while a batch not yet final reads it).
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { BatchErrorCodes, BatchgenError, newId, type ObjectStore, type SwallowedErrors } from "@batchgen/core";
import busboy from "busboy";
import { fileView } from "../batch-view.js";
import type { FileDeleter } from "../file-deleter.js";
import type { FileRecord, JobStore } from "../job-store.js";
import { contentDisposition } from "./content-disposition.js";
import { invalid, notFound, parseExpiresAfter, sendJson } from "./http-io.js";

export interface FilesApiDeps {
  store: JobStore;
  objects: ObjectStore;
  deleter: FileDeleter;
  swallowed: SwallowedErrors;
  maxFileBytes: number;
  /** Expiry of an upload without expires_after; 0: none. */
  defaultExpirySeconds: number;
}

/** Bytes a form may hold beyond its file: fields, part headers, boundaries. */
export const FORM_OVERHEAD_BYTES = 1024 * 1024;
const MAX_FIELD_BYTES = 64 * 1024;
const MAX_FILENAME_CHARS = 512;
const PURPOSES = ["batch", "batch_output"];

export function inputFileKey(fileId: string): string {
  return `files/${fileId}`;
}

interface ReceivedForm {
  fields: Map<string, string>;
  /** null when the form had no part named "file". */
  file: { filename: string; size: number } | null;
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
    const { store, maxFileBytes } = this.deps;
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers: req.headers,
        // Names sent as raw UTF-8 (what browsers and most clients do) stay UTF-8; filename* (RFC 5987) is decoded as it says.
        defParamCharset: "utf8",
        limits: { files: 1, fileSize: maxFileBytes, fields: 32, parts: 64, fieldSize: MAX_FIELD_BYTES, headerPairs: 32 },
      });
    } catch (err) {
      throw new BatchgenError("invalid_request", "The multipart/form-data body needs a boundary in its Content-Type.", { cause: err });
    }
    const id = newId("file");
    const key = inputFileKey(id);
    const form = await this.receive(req, res, bb, key);
    const rejectStored = async (err: BatchgenError): Promise<never> => {
      await this.deps.objects.delete(key).catch(this.deps.swallowed.at("files.create.cleanup"));
      throw err;
    };
    const purpose = form.fields.get("purpose");
    if (!form.file) return rejectStored(missing("file"));
    if (purpose === undefined) return rejectStored(missing("purpose"));
    if (purpose !== "batch") {
      return rejectStored(
        new BatchgenError("invalid_request", `'${purpose.slice(0, 64)}' is not a supported purpose: this server accepts 'batch' only.`, {
          param: "purpose",
          reason: BatchErrorCodes.invalidPurpose,
        }),
      );
    }
    const filename = form.file.filename || "upload.jsonl";
    if ([...filename].length > MAX_FILENAME_CHARS) {
      return rejectStored(invalid(`The filename may be at most ${MAX_FILENAME_CHARS} characters.`, "file"));
    }
    let expiresAfterS: number | null;
    try {
      expiresAfterS = parseExpiresAfter(formObject(form.fields, "expires_after"), "expires_after");
    } catch (err) {
      return rejectStored(err as BatchgenError);
    }
    expiresAfterS ??= this.deps.defaultExpirySeconds > 0 ? this.deps.defaultExpirySeconds : null;
    const now = Date.now();
    const file: FileRecord = {
      id,
      tenant,
      bytes: form.file.size,
      createdAtMs: now,
      filename,
      purpose,
      key,
      expiresAtMs: expiresAfterS === null ? null : now + expiresAfterS * 1000,
    };
    try {
      await store.createFile(file);
    } catch (err) {
      // Without its record the object is an orphan: remove it before answering (Redis down answers 503).
      await this.deps.objects.delete(key).catch(this.deps.swallowed.at("files.create.cleanup"));
      throw err instanceof BatchgenError ? err : new BatchgenError("unavailable", "Recording the file failed; please retry.", { cause: err });
    }
    sendJson(res, 200, fileView(file));
  }

  /**
   * Read the form, streaming its file part to `key`. Settles only once the upload has
   * settled too, so a failed request leaves no temp file and no open file behind.
   */
  private receive(req: IncomingMessage, res: ServerResponse, bb: busboy.Busboy, key: string): Promise<ReceivedForm> {
    const { objects, maxFileBytes } = this.deps;
    const fields = new Map<string, string>();
    let file: { filename: string; size: number } | null = null;
    let fileStream: Readable | null = null;
    let upload: Promise<void> | null = null;
    let failure: BatchgenError | null = null;
    let received = false;

    return new Promise<ReceivedForm>((resolve, reject) => {
      const fail = (err: BatchgenError): void => {
        if (failure || received) return;
        failure = err;
        req.unpipe(bb);
        // Not inside busboy's own callback (its "limit" event, say): destroying the parser
        // under its feet throws from within it.
        queueMicrotask(() => {
          // Ends the file stream with an error: the upload stops and removes its temp file.
          fileStream?.destroy(err);
          bb.destroy();
          const settled = upload ?? Promise.resolve();
          void settled
            .then(() => objects.delete(key))
            .catch(this.deps.swallowed.at("files.create.cleanup"))
            .finally(() => reject(err));
        });
      };
      bb.on("field", (name: string, value: string, info: { valueTruncated: boolean; nameTruncated: boolean }) => {
        if (info.valueTruncated || info.nameTruncated) {
          fail(invalid(`The form field '${name.slice(0, 64)}' exceeds ${MAX_FIELD_BYTES} bytes.`, name.slice(0, 64)));
          return;
        }
        fields.set(name, value);
      });
      bb.on("file", (name: string, stream: Readable, info: { filename: string | undefined }) => {
        if (name !== "file" || fileStream) {
          // Read and dropped. A form cut short inside this part errors its stream too; the
          // form's own "error" reports it, so this one needs a listener but no answer.
          stream.on("error", () => undefined);
          stream.resume();
          return;
        }
        fileStream = stream;
        // The upload reads the stream from its next tick on; an error the form parser gives
        // it before then (a form cut short) must not go unhandled. The upload sees it too.
        stream.on("error", () => undefined);
        stream.on("limit", () => {
          fail(new BatchgenError("payload_too_large", `The file exceeds the maximum size of ${maxFileBytes} bytes.`, { param: "file" }));
        });
        const filename = info.filename ?? "";
        upload = objects.upload(key, stream).then(
          ({ size }) => {
            file = { filename, size };
          },
          (err: unknown) => {
            // A stream the form parser ended with an error is a bad form (its "error" says
            // which); anything else is the store failing.
            if (stream.errored) fail(badForm(stream.errored));
            else fail(storeFailure(err));
          },
        );
      });
      for (const limit of ["partsLimit", "filesLimit", "fieldsLimit"]) {
        bb.on(limit, () => fail(invalid("The form has too many parts: send the fields 'purpose', 'file' and optional 'expires_after'.", "file")));
      }
      bb.on("error", (err: unknown) => fail(badForm(err)));
      bb.on("close", () => {
        if (failure) return;
        void (upload ?? Promise.resolve()).then(() => {
          if (failure) return;
          received = true;
          resolve({ fields, file });
        });
      });
      req.on("aborted", () => fail(new BatchgenError("cancelled", "The upload was aborted.")));
      req.on("close", () => {
        if (!req.complete) fail(new BatchgenError("cancelled", "The upload was aborted."));
      });
      req.on("error", () => fail(new BatchgenError("cancelled", "The upload was aborted.")));
      // Answered before the form was read (a timeout's 408): the rest will never be read.
      res.once("close", () => fail(new BatchgenError("cancelled", "The request was answered before the upload ended.")));
      req.pipe(bb);
    });
  }

  async list(res: ServerResponse, tenant: string, query: URLSearchParams): Promise<void> {
    const purpose = query.get("purpose") || null;
    if (purpose !== null && !PURPOSES.includes(purpose)) {
      throw invalid(`'purpose' must be one of ${PURPOSES.join(", ")}.`, "purpose");
    }
    const limitText = query.get("limit");
    const limit = limitText === null ? 10_000 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw invalid("'limit' must be an integer from 1 to 10000.", "limit");
    const order = query.get("order") ?? "desc";
    if (order !== "asc" && order !== "desc") throw invalid("'order' must be 'asc' or 'desc'.", "order");
    const after = query.get("after") || null;
    const { ids, hasMore } = await this.deps.store.listFileIds(tenant, { purpose, after, limit, order });
    const data = (await this.deps.store.getFiles(ids)).filter((f): f is FileRecord => f !== null).map(fileView);
    sendJson(res, 200, { object: "list", data, first_id: data[0]?.id ?? null, last_id: data[data.length - 1]?.id ?? null, has_more: hasMore });
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
      "content-disposition": contentDisposition(file.filename),
    });
    await pipeline(body, res).catch((err: unknown) => {
      // A client that hangs up mid-download is no server error; a store that fails mid-read is.
      if ((err as NodeJS.ErrnoException).code !== "ERR_STREAM_PREMATURE_CLOSE") this.deps.swallowed.report("files.content.stream", err);
    });
  }

  async delete(res: ServerResponse, tenant: string, id: string): Promise<void> {
    await this.getOwned(tenant, id);
    const r = await this.deps.deleter.delete(id, Date.now(), this.deps.swallowed.at("files.delete.objects"));
    if (r === null) throw notFound("file", id);
    if (!r.deleted) {
      throw new BatchgenError("conflict", `The file '${id}' is read by batch '${r.readBy}', which is not finished; cancel it or wait for it to end.`, {
        param: "id",
      });
    }
    sendJson(res, 200, { id, object: "file", deleted: true });
  }
}

function missing(param: string): BatchgenError {
  return new BatchgenError("invalid_request", `Missing required parameter: '${param}'.`, { param, reason: "missing_required_parameter" });
}

/** busboy's own messages ("Unexpected end of form", "Malformed part header") say what is wrong and hold no secrets. */
function badForm(err: unknown): BatchgenError {
  const what = err instanceof Error ? err.message : "malformed";
  return new BatchgenError("invalid_request", `The multipart body could not be parsed: ${what}.`, { cause: err });
}

/** Form fields "name[a]", "name[b]" as the object {a, b}; undefined when there are none. */
function formObject(fields: Map<string, string>, name: string): Record<string, string> | undefined {
  let out: Record<string, string> | undefined;
  for (const [k, v] of fields) {
    const m = /^([^[]+)\[([^\]]+)\]$/.exec(k);
    if (m && m[1] === name) (out ??= {})[m[2]!] = v;
  }
  return out;
}

/** A failed store write as the client sees it: 507 when the store is full, else 503; the store's words stay in the cause. */
function storeFailure(err: unknown): BatchgenError {
  if (err instanceof BatchgenError && err.code === "insufficient_storage") {
    return new BatchgenError("insufficient_storage", "The object store is full; the file was not stored.", { cause: err });
  }
  return new BatchgenError("unavailable", "Storing the file failed; please retry.", { cause: err });
}
