// Object storage on S3 or any S3-compatible server (MinIO, s3rver, ...). Streaming
// uploads go through lib-storage's Upload: bodies up to one part are a single PutObject,
// larger ones a multipart upload (parts >= 5 MiB) that is aborted if the body fails.
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { Readable } from "node:stream";
import { BatchgenError } from "./errors.js";
import { checkKey, checkRange, countedUploadChunks, type ObjectStore, type UploadBody } from "./object-store.js";

export interface S3ObjectStoreOptions {
  bucket: string;
  /** Folder inside the bucket for every key ("batchgen" or "batchgen/"); default none. */
  prefix?: string;
  endpoint?: string;
  /** Default: AWS_REGION, else us-east-1. */
  region?: string;
  /** Path-style URLs (http://host/bucket/key): needed by MinIO and s3rver. */
  forcePathStyle?: boolean;
  /** Default: the AWS SDK's provider chain (AWS_* environment, profile, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Multipart part size in bytes for upload(); at least 5 MiB (default 8 MiB). */
  partSize?: number;
  /** Parts uploaded at once; memory use is about partSize * queueSize (default 4). */
  queueSize?: number;
  /**
   * A request with no answer for this long fails (the SDK retries it, 3 attempts in all),
   * so a stalled store ends in an error instead of a hang (default 30 s; connecting: 5 s).
   */
  requestTimeoutMs?: number;
}

const MIN_PART_SIZE = 5 * 1024 * 1024;

interface SdkError {
  name?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

export class S3ObjectStore implements ObjectStore {
  readonly bucket: string;
  readonly prefix: string;
  private readonly client: S3Client;
  private readonly partSize: number;
  private readonly queueSize: number;

  constructor(opts: S3ObjectStoreOptions) {
    if (!opts.bucket) throw new BatchgenError("invalid_request", "S3 bucket name is required", { param: "bucket" });
    this.bucket = opts.bucket;
    const p = (opts.prefix ?? "").replace(/^\/+/, "");
    this.prefix = p === "" || p.endsWith("/") ? p : p + "/";
    this.partSize = Math.max(MIN_PART_SIZE, opts.partSize ?? 8 * 1024 * 1024);
    this.queueSize = Math.max(1, opts.queueSize ?? 4);
    const config: S3ClientConfig = {
      region: opts.region ?? process.env.AWS_REGION ?? "us-east-1",
      forcePathStyle: opts.forcePathStyle ?? false,
      // Checksums only where S3 requires them: S3-compatible servers often do not
      // understand the SDK's default trailing (aws-chunked) checksums.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      requestHandler: {
        requestTimeout: opts.requestTimeoutMs ?? 30_000,
        connectionTimeout: Math.min(5_000, opts.requestTimeoutMs ?? 5_000),
        // Without it this SDK only warns about a request past its timeout and keeps waiting.
        throwOnRequestTimeout: true,
      },
    };
    if (opts.endpoint) config.endpoint = opts.endpoint;
    if (opts.credentials) config.credentials = opts.credentials;
    this.client = new S3Client(config);
  }

  private full(key: string): string {
    return this.prefix + checkKey(key);
  }

  private describe(key: string): string {
    return `s3://${this.bucket}/${this.prefix}${key}`;
  }

  /** Turn an SDK or network error into the batchgen vocabulary, naming the object. */
  private wrap(err: unknown, key: string, action: string): BatchgenError {
    if (err instanceof BatchgenError) return err;
    const e = err as SdkError;
    const status = e.$metadata?.httpStatusCode;
    const where = this.describe(key);
    if (e.name === "NoSuchBucket") {
      return new BatchgenError("failed_precondition", `S3 bucket ${this.bucket} does not exist`, { cause: err });
    }
    if (e.name === "NoSuchKey" || e.name === "NotFound" || status === 404) {
      return new BatchgenError("not_found", `object not found: ${key}`, { cause: err });
    }
    if (status === 403 || e.name === "AccessDenied" || e.name === "InvalidAccessKeyId" || e.name === "SignatureDoesNotMatch") {
      return new BatchgenError("permission_denied", `object store denied ${action} of ${where}`, { cause: err });
    }
    if (status === 507 || e.name === "EntityTooLarge" || e.name === "QuotaExceeded") {
      return new BatchgenError("insufficient_storage", `object store is full: ${action} of ${where} refused`, { cause: err });
    }
    if (status === undefined || status >= 500 || status === 429) {
      return new BatchgenError("unavailable", `object store unavailable during ${action} of ${where}`, { cause: err });
    }
    return new BatchgenError("internal", `object store failed ${action} of ${where} (HTTP ${status})`, { cause: err });
  }

  async put(key: string, body: string | Uint8Array): Promise<void> {
    try {
      // An explicit length: the SDK sends none for an empty string.
      const ContentLength = typeof body === "string" ? Buffer.byteLength(body) : body.byteLength;
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.full(key), Body: body, ContentLength }));
    } catch (err) {
      throw this.wrap(err, key, "put");
    }
  }

  async upload(key: string, body: UploadBody): Promise<{ size: number }> {
    const Key = this.full(key);
    const counted = countedUploadChunks(body);
    try {
      const upload = new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key, Body: Readable.from(counted.chunks) },
        partSize: this.partSize,
        queueSize: this.queueSize,
        leavePartsOnError: false,
      });
      await upload.done();
    } catch (err) {
      throw this.wrap(err, key, "upload");
    }
    return { size: counted.size() };
  }

  async get(key: string): Promise<NodeJS.ReadableStream> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.full(key) }));
      return (out.Body as Readable | undefined) ?? Readable.from([]);
    } catch (err) {
      throw this.wrap(err, key, "get");
    }
  }

  async getBytes(key: string): Promise<Buffer> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.full(key) }));
      return out.Body ? Buffer.from(await out.Body.transformToByteArray()) : Buffer.alloc(0);
    } catch (err) {
      throw this.wrap(err, key, "get");
    }
  }

  async getRange(key: string, start: number, endExclusive: number): Promise<Buffer> {
    checkRange(start, endExclusive);
    if (start === endExclusive) {
      if ((await this.head(key)) === null) throw new BatchgenError("not_found", `object not found: ${key}`);
      return Buffer.alloc(0);
    }
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.full(key), Range: `bytes=${start}-${endExclusive - 1}` }),
      );
      return out.Body ? Buffer.from(await out.Body.transformToByteArray()) : Buffer.alloc(0);
    } catch (err) {
      const e = err as SdkError;
      // A range starting at or past the end: S3 answers 416; the contract says "clamped".
      if (e.name === "InvalidRange" || e.$metadata?.httpStatusCode === 416) {
        if ((await this.head(key)) === null) throw new BatchgenError("not_found", `object not found: ${key}`);
        return Buffer.alloc(0);
      }
      throw this.wrap(err, key, "ranged get");
    }
  }

  async head(key: string): Promise<{ size: number } | null> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.full(key) }));
      return { size: out.ContentLength ?? 0 };
    } catch (err) {
      const e = err as SdkError;
      if (e.name === "NotFound" || e.name === "NoSuchKey" || (e.$metadata?.httpStatusCode === 404 && e.name !== "NoSuchBucket")) {
        return null;
      }
      throw this.wrap(err, key, "head");
    }
  }

  async *list(prefix: string): AsyncIterable<string> {
    let token: string | undefined;
    do {
      let out;
      try {
        out = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token }),
        );
      } catch (err) {
        throw this.wrap(err, prefix, "list");
      }
      // S3 lists in byte order; sorting each page keeps that promise on servers that
      // walk folders instead (s3rver puts "a/b" before "a.b").
      const keys = (out.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [o.Key.slice(this.prefix.length)]));
      keys.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      yield* keys;
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.full(key) }));
    } catch (err) {
      const e = err as SdkError;
      if (e.name === "NoSuchKey" || (e.$metadata?.httpStatusCode === 404 && e.name !== "NoSuchBucket")) return;
      throw this.wrap(err, key, "delete");
    }
  }

  async deletePrefix(prefix: string): Promise<void> {
    // Collect first: deleting while paging could skip keys on some servers.
    const keys: string[] = [];
    for await (const key of this.list(prefix)) keys.push(key);
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      let out;
      try {
        out = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((k) => ({ Key: this.prefix + k })), Quiet: true },
          }),
        );
      } catch (err) {
        throw this.wrap(err, prefix, "delete");
      }
      const failed = (out.Errors ?? []).filter((e) => e.Code !== "NoSuchKey");
      if (failed.length > 0) {
        const first = failed[0]!;
        throw new BatchgenError(
          "unavailable",
          `object store could not delete ${failed.length} objects under ${this.describe(prefix)}; first: ${first.Key} (${first.Code})`,
        );
      }
    }
  }

  /** Close the HTTP connections of the S3 client. */
  async close(): Promise<void> {
    this.client.destroy();
  }
}
