// Object storage in a folder: key "a/b/c" is the file <root>/a/b/c. Writes go to a temp
// file under <root>/.batchgen-tmp and are renamed into place, so a reader never sees a
// half-written object, even if the process dies mid-write. With { fsync: true } the data
// is also flushed to disk before the rename (durable across power loss, slower).
// Unlike S3, a key cannot be both an object and a prefix of another ("a" and "a/b").
import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, rename, rmdir, stat, unlink, type FileHandle } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { pipeline } from "node:stream/promises";
import { Readable } from "node:stream";
import { BatchgenError } from "./errors.js";
import { checkKey, checkRange, countedUploadChunks, type ObjectStore, type UploadBody } from "./object-store.js";

const TMP_DIR = ".batchgen-tmp";

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

const FS_FAULTS = new Set(["EACCES", "EPERM", "EROFS", "EIO", "EMFILE", "ENFILE", "EBUSY", "ENXIO"]);

/** A write or read failure of the folder in the batchgen vocabulary: full (507) or unavailable (503). */
function storeError(err: unknown, action: string, key: string): unknown {
  if (err instanceof BatchgenError) return err;
  const code = errno(err);
  if (code === "ENOSPC" || code === "EDQUOT" || code === "EFBIG") {
    return new BatchgenError("insufficient_storage", `the object store is full: cannot ${action} ${key} (${code})`, { cause: err });
  }
  // Only the folder's own failures: an upload body's error (a client that went away) passes as it is.
  if (code !== undefined && FS_FAULTS.has(code)) {
    return new BatchgenError("unavailable", `the object store failed to ${action} ${key} (${code})`, { cause: err });
  }
  return err;
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export class FsObjectStore implements ObjectStore {
  readonly root: string;
  private readonly fsync: boolean;
  private tmpDirMade = false;

  constructor(root: string, opts: { fsync?: boolean } = {}) {
    this.root = resolve(root);
    this.fsync = opts.fsync ?? false;
  }

  private pathOf(key: string): string {
    checkKey(key);
    if (key === TMP_DIR || key.startsWith(TMP_DIR + "/")) {
      throw new BatchgenError("invalid_request", `object keys may not start with ${TMP_DIR}`, { param: "key" });
    }
    return join(this.root, ...key.split("/"));
  }

  /** A fresh temp file name; the temp folder is made once (and again if it vanished: see openTmp). */
  private async tmpPath(): Promise<string> {
    const dir = join(this.root, TMP_DIR);
    if (!this.tmpDirMade) {
      await mkdir(dir, { recursive: true });
      this.tmpDirMade = true;
    }
    return join(dir, `${Date.now()}-${randomBytes(6).toString("hex")}`);
  }

  private async openTmp(tmp: string): Promise<FileHandle> {
    try {
      return await open(tmp, "w");
    } catch (err) {
      if (errno(err) !== "ENOENT") throw err;
      // The temp folder was removed under this store: make it again.
      await mkdir(dirname(tmp), { recursive: true });
      return open(tmp, "w");
    }
  }

  private notFound(key: string, cause?: unknown): BatchgenError {
    return new BatchgenError("not_found", `object not found: ${key}`, { cause });
  }

  /** Move a finished temp file into place; retries when a concurrent delete pruned the folder. */
  private async commit(tmp: string, key: string, target: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        // Most puts go to a folder that exists already: rename first, make folders on ENOENT.
        if (attempt > 0) await mkdir(dirname(target), { recursive: true });
        await rename(tmp, target);
        return;
      } catch (err) {
        const code = errno(err);
        if (code === "ENOENT" && attempt < 6) continue;
        await unlink(tmp).catch(() => undefined);
        if (code === "ENOTDIR" || code === "EISDIR" || code === "EEXIST") {
          throw new BatchgenError("conflict", `cannot write ${key}: a key and a prefix of another key collide`, { cause: err });
        }
        throw err;
      }
    }
  }

  async put(key: string, body: string | Uint8Array): Promise<void> {
    const target = this.pathOf(key);
    try {
      const tmp = await this.tmpPath();
      const fh = await this.openTmp(tmp);
      try {
        await fh.writeFile(body);
        if (this.fsync) await fh.datasync();
      } catch (err) {
        await fh.close().catch(() => undefined); // the write's error is the one to report
        await unlink(tmp).catch(() => undefined); // best effort: a temp file left behind is swept by the janitor
        throw err;
      }
      await fh.close();
      await this.commit(tmp, key, target);
    } catch (err) {
      throw storeError(err, "write", key);
    }
  }

  async upload(key: string, body: UploadBody): Promise<{ size: number }> {
    const counted = countedUploadChunks(body);
    const target = this.pathOf(key);
    try {
      const tmp = await this.tmpPath();
      await mkdir(dirname(tmp), { recursive: true }); // uploads are few: no need to rely on the cached folder
      // The temp file exists before any byte is read, so a body that fails at once leaves
      // nothing behind (a write stream opening lazily could create it after the unlink).
      const fh = await this.openTmp(tmp);
      const out = fh.createWriteStream({ flush: this.fsync });
      try {
        await pipeline(Readable.from(counted.chunks), out);
      } catch (err) {
        // The handle closes with the stream; an unlink of an already-missing file is fine.
        await new Promise<void>((resolve) => (out.closed ? resolve() : out.once("close", () => resolve())));
        await unlink(tmp).catch(() => undefined);
        throw err;
      }
      await this.commit(tmp, key, target);
    } catch (err) {
      throw storeError(err, "write", key);
    }
    return { size: counted.size() };
  }

  async get(key: string): Promise<NodeJS.ReadableStream> {
    const path = this.pathOf(key);
    let fh;
    try {
      fh = await open(path, "r");
      if (!(await fh.stat()).isFile()) throw Object.assign(new Error("not a file"), { code: "EISDIR" });
    } catch (err) {
      await fh?.close();
      if (["ENOENT", "ENOTDIR", "EISDIR"].includes(errno(err) ?? "")) throw this.notFound(key, err);
      throw err;
    }
    return fh.createReadStream();
  }

  async getBytes(key: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of await this.get(key)) chunks.push(Buffer.from(c as Uint8Array));
    return Buffer.concat(chunks);
  }

  async getRange(key: string, start: number, endExclusive: number): Promise<Buffer> {
    checkRange(start, endExclusive);
    const path = this.pathOf(key);
    let fh;
    try {
      fh = await open(path, "r");
    } catch (err) {
      if (["ENOENT", "ENOTDIR", "EISDIR"].includes(errno(err) ?? "")) throw this.notFound(key, err);
      throw err;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw this.notFound(key);
      const end = Math.min(endExclusive, st.size);
      if (start >= end) return Buffer.alloc(0);
      const buf = Buffer.allocUnsafe(end - start);
      let read = 0;
      while (read < buf.length) {
        const { bytesRead } = await fh.read(buf, read, buf.length - read, start + read);
        if (bytesRead === 0) break;
        read += bytesRead;
      }
      return buf.subarray(0, read);
    } finally {
      await fh.close();
    }
  }

  async head(key: string): Promise<{ size: number } | null> {
    try {
      const st = await stat(this.pathOf(key));
      return st.isFile() ? { size: st.size } : null;
    } catch (err) {
      if (["ENOENT", "ENOTDIR"].includes(errno(err) ?? "")) return null;
      throw err;
    }
  }

  async *list(prefix: string): AsyncIterable<string> {
    if (prefix.startsWith("/") || prefix.includes("\\") || prefix.split("/").some((s) => s === "." || s === "..")) {
      throw new BatchgenError("invalid_request", `invalid key prefix ${JSON.stringify(prefix)}`, { param: "prefix" });
    }
    const cut = prefix.lastIndexOf("/");
    const base = cut < 0 ? "" : prefix.slice(0, cut + 1);
    yield* this.walk(base, prefix);
  }

  // Depth-first over entries sorted as their keys sort: a folder "a" holds keys "a/...",
  // so it is ordered as "a/" against its siblings; that makes the walk lexicographic.
  private async *walk(dirKey: string, prefix: string): AsyncGenerator<string> {
    let entries;
    try {
      entries = await readdir(join(this.root, ...dirKey.split("/").filter(Boolean)), { withFileTypes: true });
    } catch (err) {
      if (["ENOENT", "ENOTDIR"].includes(errno(err) ?? "")) return;
      throw err;
    }
    const named = entries
      .filter((e) => !(dirKey === "" && e.name === TMP_DIR) && (e.isDirectory() || e.isFile()))
      .map((e) => ({ key: dirKey + e.name + (e.isDirectory() ? "/" : ""), dir: e.isDirectory() }))
      .sort((a, b) => byteOrder(a.key, b.key));
    for (const e of named) {
      if (!(e.key.startsWith(prefix) || (e.dir && prefix.startsWith(e.key)))) continue;
      if (e.dir) yield* this.walk(e.key, prefix);
      else yield e.key;
    }
  }

  async removeStaleTemp(beforeMs: number): Promise<number> {
    const dir = join(this.root, TMP_DIR);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if (errno(err) === "ENOENT") return 0;
      throw err;
    }
    let removed = 0;
    for (const name of names) {
      const path = join(dir, name);
      try {
        if ((await stat(path)).mtimeMs >= beforeMs) continue;
        await unlink(path);
        removed++;
      } catch (err) {
        // Renamed into place or removed by its own writer meanwhile: nothing left to do.
        if (errno(err) !== "ENOENT") throw err;
      }
    }
    return removed;
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      await unlink(path);
    } catch (err) {
      if (["ENOENT", "ENOTDIR", "EISDIR"].includes(errno(err) ?? "")) return;
      throw err;
    }
    await this.pruneEmptyDirs(dirname(path));
  }

  async deletePrefix(prefix: string): Promise<void> {
    const keys: string[] = [];
    for await (const key of this.list(prefix)) keys.push(key);
    for (const key of keys) await this.delete(key);
  }

  /** Remove folders left empty, up to (not including) the root; a folder in use stays. */
  private async pruneEmptyDirs(dir: string): Promise<void> {
    let d = dir;
    while (d.startsWith(this.root + sep)) {
      try {
        await rmdir(d);
      } catch {
        return;
      }
      d = dirname(d);
    }
  }
}
