import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { createObjectStore } from "./create-object-store.js";
import { BatchgenError } from "./errors.js";
import { FsObjectStore } from "./fs-object-store.js";
import { S3ObjectStore } from "./s3-object-store.js";

describe("createObjectStore", () => {
  it("a path or file:// URL gives a folder store", () => {
    const dir = join(tmpdir(), "bg-store");
    const a = createObjectStore(dir);
    expect(a).toBeInstanceOf(FsObjectStore);
    expect((a as FsObjectStore).root).toBe(dir);
    expect((createObjectStore(`file://${dir}`) as FsObjectStore).root).toBe(dir);
    expect((createObjectStore("./rel/store") as FsObjectStore).root).toBe(resolve("rel/store"));
  });

  it("an s3:// URL gives an S3 store with bucket, prefix and options", () => {
    const s = createObjectStore("s3://my-bucket/batchgen/prod?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=eu-west-1&forcePathStyle=true", {});
    expect(s).toBeInstanceOf(S3ObjectStore);
    expect((s as S3ObjectStore).bucket).toBe("my-bucket");
    expect((s as S3ObjectStore).prefix).toBe("batchgen/prod/");
    expect((createObjectStore("s3://only-bucket", {}) as S3ObjectStore).prefix).toBe("");
  });

  it.each([
    ["", /empty/],
    ["gs://bucket/x", /unsupported object store URL/],
    ["s3://b/p?forcePathStyle=yes", /forcePathStyle must be true or false/],
    ["s3://b/p?partSize=-1", /partSize must be a positive integer/],
    ["s3://b/p?colour=blue", /unknown S3 URL parameter "colour"/],
  ])("rejects %j with a clear invalid_request", (url, message) => {
    let err: unknown;
    try {
      createObjectStore(url, {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BatchgenError);
    expect((err as BatchgenError).code).toBe("invalid_request");
    expect((err as BatchgenError).message).toMatch(message);
  });
});
