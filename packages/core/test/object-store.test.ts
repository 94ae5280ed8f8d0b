// One contract, run against both implementations: the filesystem store in a temp folder
// and the S3 store on a real S3-compatible server (s3rver) on a loopback port.
import { createHash, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BatchgenError } from "../src/errors.js";
import { createObjectStore } from "../src/create-object-store.js";
import { FsObjectStore } from "../src/fs-object-store.js";
import type { ObjectStore } from "../src/object-store.js";
import { S3ObjectStore } from "../src/s3-object-store.js";
import { startS3rver, type S3rverHandle } from "./support/s3rver.js";

const MiB = 1024 * 1024;

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const k of it) out.push(k);
  return out;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, `expected a BatchgenError(${code})`).toBeInstanceOf(BatchgenError);
  expect((err as BatchgenError).code).toBe(code);
}

/** A deterministic pseudo-random body of `size` bytes in chunks of varying size, mixing strings and bytes. */
function bigBody(size: number, seed: number): { chunks: () => AsyncGenerator<Uint8Array | string>; sha: string } {
  const data = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    // Printable ASCII so string chunks are byte-for-byte the same as the bytes.
    data[i] = 32 + ((x >>> 0) % 95);
  }
  const sha = createHash("sha256").update(data).digest("hex");
  async function* chunks() {
    let off = 0;
    let n = 0;
    while (off < size) {
      const len = Math.min(size - off, 1000 + ((n * 7919) % 200_000));
      const slice = data.subarray(off, off + len);
      yield n % 3 === 0 ? slice.toString("latin1") : new Uint8Array(slice);
      off += len;
      n++;
      if (n % 16 === 0) await new Promise((r) => setImmediate(r));
    }
  }
  return { chunks, sha };
}

function objectStoreContract(name: string, makeStore: () => Promise<ObjectStore>) {
  describe(`${name}: ObjectStore contract`, () => {
    it("put then getBytes, get and head return what was written; put replaces", async () => {
      const store = await makeStore();
      await store.put("a/b/c.txt", "hello");
      expect((await store.getBytes("a/b/c.txt")).toString()).toBe("hello");
      const bytes = new Uint8Array([0, 1, 2, 250, 255]);
      await store.put("bin", bytes);
      expect([...(await store.getBytes("bin"))]).toEqual([0, 1, 2, 250, 255]);
      expect(await store.head("bin")).toEqual({ size: 5 });
      await store.put("a/b/c.txt", "replaced, longer");
      expect((await readAll(await store.get("a/b/c.txt"))).toString()).toBe("replaced, longer");
      expect(await store.head("a/b/c.txt")).toEqual({ size: 16 });
      await store.put("empty", "");
      expect(await store.head("empty")).toEqual({ size: 0 });
      expect((await store.getBytes("empty")).length).toBe(0);
    });

    it("missing objects: get/getBytes/getRange throw not_found, head is null, delete is quiet", async () => {
      const store = await makeStore();
      await expectCode(store.get("nope/x"), "not_found");
      await expectCode(store.getBytes("nope"), "not_found");
      await expectCode(store.getRange("nope", 0, 10), "not_found");
      await expectCode(store.getRange("nope", 3, 3), "not_found");
      expect(await store.head("nope")).toBeNull();
      await store.put("dir/file", "x");
      // "dir" is only a prefix, not an object.
      expect(await store.head("dir")).toBeNull();
      await expectCode(store.get("dir"), "not_found");
      await store.delete("nope");
      await store.delete("nope/deeper");
    });

    it("getRange returns the bytes asked for, clamped to the object's size", async () => {
      const store = await makeStore();
      await store.put("r", "0123456789");
      expect((await store.getRange("r", 0, 10)).toString()).toBe("0123456789");
      expect((await store.getRange("r", 2, 5)).toString()).toBe("234");
      expect((await store.getRange("r", 7, 100)).toString()).toBe("789");
      expect((await store.getRange("r", 4, 4)).length).toBe(0);
      expect((await store.getRange("r", 10, 20)).length).toBe(0);
      expect((await store.getRange("r", 50, 60)).length).toBe(0);
      await expectCode(store.getRange("r", 5, 2), "invalid_request");
      await expectCode(store.getRange("r", -1, 2), "invalid_request");
    });

    it("list yields keys under a prefix in lexicographic byte order", async () => {
      const store = await makeStore();
      const keys = ["b/x", "a/c/d", "a.b", "a/b", "ab", "a/b0", "batches/b1/parts/2", "batches/b1/parts/10", "batches/b10/x", "z"];
      for (const k of keys) await store.put(k, k);
      const sorted = [...keys].sort((p, q) => Buffer.compare(Buffer.from(p), Buffer.from(q)));
      expect(await collect(store.list(""))).toEqual(sorted);
      expect(await collect(store.list("a"))).toEqual(["a.b", "a/b", "a/b0", "a/c/d", "ab"]);
      expect(await collect(store.list("a/"))).toEqual(["a/b", "a/b0", "a/c/d"]);
      expect(await collect(store.list("batches/b1/"))).toEqual(["batches/b1/parts/10", "batches/b1/parts/2"]);
      expect(await collect(store.list("batches/b1"))).toEqual(["batches/b1/parts/10", "batches/b1/parts/2", "batches/b10/x"]);
      expect(await collect(store.list("batches/b1/par"))).toEqual(["batches/b1/parts/10", "batches/b1/parts/2"]);
      expect(await collect(store.list("nothing/"))).toEqual([]);
    });

    it("list pages through more keys than one listing page holds", async () => {
      const store = await makeStore();
      const keys = Array.from({ length: 1_050 }, (_, i) => `many/${String(i).padStart(5, "0")}`);
      for (let i = 0; i < keys.length; i += 50) await Promise.all(keys.slice(i, i + 50).map((k) => store.put(k, "")));
      expect(await collect(store.list("many/"))).toEqual(keys);
      await store.deletePrefix("many/");
      expect(await collect(store.list("many/"))).toEqual([]);
    });

    it("delete removes one object; deletePrefix removes exactly the keys under the prefix", async () => {
      const store = await makeStore();
      for (const k of ["p/1", "p/2", "p/sub/3", "p2/keep", "q/keep"]) await store.put(k, k);
      await store.delete("p/1");
      expect(await store.head("p/1")).toBeNull();
      expect(await collect(store.list("p/"))).toEqual(["p/2", "p/sub/3"]);
      await store.deletePrefix("p/");
      expect(await collect(store.list(""))).toEqual(["p2/keep", "q/keep"]);
      await store.deletePrefix("nothing-here/");
      expect(await collect(store.list(""))).toEqual(["p2/keep", "q/keep"]);
      // A key can be written again where a prefix was emptied.
      await store.put("p/1", "again");
      expect((await store.getBytes("p/1")).toString()).toBe("again");
    });

    it("upload streams a multi-MB body (several >= 5 MiB parts) and reports its size", async () => {
      const store = await makeStore();
      const size = 12 * MiB + 12_345;
      const body = bigBody(size, 42);
      const { size: written } = await store.upload("big/output.jsonl", body.chunks());
      expect(written).toBe(size);
      expect(await store.head("big/output.jsonl")).toEqual({ size });
      const back = await readAll(await store.get("big/output.jsonl"));
      expect(createHash("sha256").update(back).digest("hex")).toBe(body.sha);
      const mid = await store.getRange("big/output.jsonl", 5 * MiB - 10, 5 * MiB + 10);
      expect(mid.equals(back.subarray(5 * MiB - 10, 5 * MiB + 10))).toBe(true);
    });

    it("upload of a small body, of an empty body, and from a Node stream", async () => {
      const store = await makeStore();
      expect(await store.upload("small", (async function* () { yield "ab"; yield new Uint8Array([99]); })())).toEqual({ size: 3 });
      expect((await store.getBytes("small")).toString()).toBe("abc");
      expect(await store.upload("nothing", (async function* () {})())).toEqual({ size: 0 });
      expect(await store.head("nothing")).toEqual({ size: 0 });
      await store.put("src", "copied through a stream");
      expect(await store.upload("copy", await store.get("src"))).toEqual({ size: 23 });
      expect((await store.getBytes("copy")).toString()).toBe("copied through a stream");
    });

    it("a stream body that errors before the upload reads it rejects the upload (no unhandled error) and stores nothing", async () => {
      const store = await makeStore();
      const body = new PassThrough();
      const up = store.upload("early", body);
      body.destroy(new Error("client went away"));
      await expect(up).rejects.toThrow();
      expect(await store.head("early")).toBeNull();
    });

    it("a failing upload body leaves no object behind and keeps the previous one", async () => {
      const store = await makeStore();
      await store.put("keep", "old");
      const failing = async function* () {
        yield Buffer.alloc(6 * MiB, 97);
        throw new Error("source broke");
      };
      await expect(store.upload("partial", failing())).rejects.toThrow();
      expect(await store.head("partial")).toBeNull();
      await expect(store.upload("keep", failing())).rejects.toThrow();
      expect((await store.getBytes("keep")).toString()).toBe("old");
      expect(await collect(store.list(""))).toEqual(["keep"]);
    });

    it("rejects keys that are not clean relative paths", async () => {
      const store = await makeStore();
      for (const bad of ["", "/abs", "a//b", "a/../b", "..", "a/./b", "trailing/"]) {
        await expectCode(store.put(bad, "x"), "invalid_request");
      }
    });
  });
}

// --- filesystem -------------------------------------------------------------------------

const fsRoots: string[] = [];
afterAll(() => {
  for (const r of fsRoots) rmSync(r, { recursive: true, force: true });
});

objectStoreContract("FsObjectStore", async () => {
  const root = mkdtempSync(join(tmpdir(), "bg-fs-store-"));
  fsRoots.push(root);
  return new FsObjectStore(root);
});

describe("FsObjectStore specifics", () => {
  const fresh = (): { root: string; store: FsObjectStore } => {
    const root = mkdtempSync(join(tmpdir(), "bg-fs-store-"));
    fsRoots.push(root);
    return { root, store: new FsObjectStore(root) };
  };
  const temps = (root: string): string[] => (existsSync(join(root, ".batchgen-tmp")) ? readdirSync(join(root, ".batchgen-tmp")) : []);

  it("an upload whose body fails at once leaves no temp file (50 times)", async () => {
    const { root, store } = fresh();
    for (let i = 0; i < 50; i++) {
      const body = new PassThrough();
      const up = store.upload(`k/${i}`, body);
      body.destroy(new Error("client went away"));
      await expect(up).rejects.toThrow("client went away");
    }
    expect(temps(root)).toEqual([]);
    expect(await store.head("k/0")).toBeNull();
  });

  it("removeStaleTemp removes temp files older than the cut-off, and only those", async () => {
    const { root, store } = fresh();
    await store.put("warm", "x"); // makes the temp folder
    writeFileSync(join(root, ".batchgen-tmp", "old"), "partial");
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(join(root, ".batchgen-tmp", "old"), old, old);
    writeFileSync(join(root, ".batchgen-tmp", "new"), "partial");
    expect(await store.removeStaleTemp(Date.now() - 60_000)).toBe(1);
    expect(temps(root)).toEqual(["new"]);
    expect(await new FsObjectStore(mkdtempSync(join(tmpdir(), "bg-fs-empty-"))).removeStaleTemp(Date.now())).toBe(0);
  });
});

// --- S3 on s3rver -----------------------------------------------------------------------

let s3: S3rverHandle;
const s3Stores: S3ObjectStore[] = [];

beforeAll(async () => {
  s3 = await startS3rver();
});

afterAll(async () => {
  for (const s of s3Stores) await s.close();
  await s3?.stop();
});

function s3Store(prefix = `t-${randomUUID()}`): S3ObjectStore {
  const store = new S3ObjectStore({
    bucket: s3.bucket,
    prefix,
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: s3.credentials,
    partSize: 5 * MiB,
  });
  s3Stores.push(store);
  return store;
}

objectStoreContract("S3ObjectStore (s3rver)", async () => s3Store());

describe("S3ObjectStore specifics (s3rver)", () => {
  it("a large upload goes up as a multipart upload of >= 5 MiB parts", async () => {
    const store = s3Store();
    const before = s3.requests.length;
    const body = bigBody(11 * MiB, 7);
    expect((await store.upload("mp/object", body.chunks())).size).toBe(11 * MiB);
    const seen = s3.requests.slice(before).filter((r) => r.includes("/mp/object"));
    expect(seen.some((r) => r.startsWith("POST") && r.includes("uploads"))).toBe(true);
    expect(seen.filter((r) => r.startsWith("PUT") && r.includes("partNumber=")).length).toBe(3);
    expect(seen.some((r) => r.startsWith("POST") && r.includes("uploadId="))).toBe(true);
  });

  it("keys live under the store's prefix in the bucket and list strips it", async () => {
    const prefix = `pfx-${randomUUID()}`;
    const store = s3Store(prefix);
    await store.put("x/y", "1");
    const whole = s3Store("");
    expect(await collect(whole.list(`${prefix}/`))).toEqual([`${prefix}/x/y`]);
    expect(await collect(store.list(""))).toEqual(["x/y"]);
  });

  it("createObjectStore reads an s3:// URL (credentials from AWS_* env)", async () => {
    const prefix = `url-${randomUUID()}`;
    const url = s3.url(prefix);
    const store = createObjectStore(url, { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER" }) as S3ObjectStore;
    s3Stores.push(store);
    expect(store).toBeInstanceOf(S3ObjectStore);
    await store.put("k", "v");
    expect((await s3Store(prefix).getBytes("k")).toString()).toBe("v");
  });

  it("a bucket that does not exist is a failed_precondition naming the bucket", async () => {
    const store = new S3ObjectStore({ bucket: "no-such-bucket-here", endpoint: s3.endpoint, forcePathStyle: true, credentials: s3.credentials });
    s3Stores.push(store);
    const err = await store.put("k", "v").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BatchgenError);
    expect((err as BatchgenError).code).toBe("failed_precondition");
    expect((err as BatchgenError).message).toContain("no-such-bucket-here");
  });

  it("an unreachable server is unavailable, not a crash", async () => {
    const store = new S3ObjectStore({ bucket: s3.bucket, endpoint: "http://127.0.0.1:1", forcePathStyle: true, credentials: s3.credentials });
    s3Stores.push(store);
    await expectCode(store.getBytes("k"), "unavailable");
  });
});
