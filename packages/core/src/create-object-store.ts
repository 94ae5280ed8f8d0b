// An object store from one URL, so configuration stays a single string:
//   /abs/path, ./rel/path, file:///abs/path                  -> FsObjectStore
//   s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&forcePathStyle=true
//                                                            -> S3ObjectStore
//   (also partSize, queueSize, requestTimeoutMs: a request that hangs longer fails, and is retried)
// S3 credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and
// AWS_SESSION_TOKEN) when set, else from the AWS SDK's default provider chain.
import { fileURLToPath } from "node:url";
import { BatchgenError } from "./errors.js";
import { FsObjectStore } from "./fs-object-store.js";
import type { ObjectStore } from "./object-store.js";
import { S3ObjectStore, type S3ObjectStoreOptions } from "./s3-object-store.js";

const S3_PARAMS = new Set(["endpoint", "region", "forcePathStyle", "partSize", "queueSize", "requestTimeoutMs"]);

export function createObjectStore(url: string, env: Record<string, string | undefined> = process.env): ObjectStore {
  const spec = url.trim();
  if (spec === "") throw new BatchgenError("invalid_request", "object store URL is empty", { param: "objectStore" });
  if (spec.startsWith("file:")) {
    try {
      return new FsObjectStore(fileURLToPath(spec));
    } catch (err) {
      throw new BatchgenError("invalid_request", `invalid file URL ${JSON.stringify(spec)}: use file:///absolute/path`, {
        param: "objectStore",
        cause: err,
      });
    }
  }
  if (spec.startsWith("s3://")) return new S3ObjectStore(s3Options(spec, env));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    throw new BatchgenError("invalid_request", `unsupported object store URL ${JSON.stringify(spec)}: use a path, file:// or s3://`, {
      param: "objectStore",
    });
  }
  return new FsObjectStore(spec);
}

function s3Options(spec: string, env: Record<string, string | undefined>): S3ObjectStoreOptions {
  let u: URL;
  try {
    u = new URL(spec);
  } catch (err) {
    throw new BatchgenError("invalid_request", `invalid S3 URL ${JSON.stringify(spec)}`, { param: "objectStore", cause: err });
  }
  if (!u.hostname) throw new BatchgenError("invalid_request", `S3 URL ${JSON.stringify(spec)} names no bucket`, { param: "objectStore" });
  for (const name of u.searchParams.keys()) {
    if (!S3_PARAMS.has(name)) {
      throw new BatchgenError("invalid_request", `unknown S3 URL parameter ${JSON.stringify(name)} (known: ${[...S3_PARAMS].join(", ")})`, {
        param: "objectStore",
      });
    }
  }
  const q = u.searchParams;
  const opts: S3ObjectStoreOptions = { bucket: u.hostname, prefix: decodeURIComponent(u.pathname.replace(/^\/+/, "")) };
  const endpoint = q.get("endpoint");
  if (endpoint) opts.endpoint = endpoint;
  const region = q.get("region") ?? env.AWS_REGION;
  if (region) opts.region = region;
  const pathStyle = q.get("forcePathStyle");
  if (pathStyle !== null) {
    if (pathStyle !== "true" && pathStyle !== "false") {
      throw new BatchgenError("invalid_request", "S3 URL parameter forcePathStyle must be true or false", { param: "objectStore" });
    }
    opts.forcePathStyle = pathStyle === "true";
  }
  for (const name of ["partSize", "queueSize", "requestTimeoutMs"] as const) {
    const v = q.get(name);
    if (v === null) continue;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n <= 0) {
      throw new BatchgenError("invalid_request", `S3 URL parameter ${name} must be a positive integer`, { param: "objectStore" });
    }
    opts[name] = n;
  }
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    opts.credentials = { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY };
    if (env.AWS_SESSION_TOKEN) opts.credentials.sessionToken = env.AWS_SESSION_TOKEN;
  }
  return opts;
}
