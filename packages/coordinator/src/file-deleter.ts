// Deleting a file everywhere: its record (refused while a batch not yet final reads it),
// then its object and the storage of the batches that read it. Redis first: the file is
// gone from the API at once; the objects go through the trash, so a store that fails
// mid-way leaves entries the janitor deletes later rather than orphans nobody knows of.
import type { ObjectStore } from "@batchgen/core";
import type { DeleteFileResult, JobStore } from "./job-store.js";

const KEY = "key:";
const PREFIX = "prefix:";

export class FileDeleter {
  constructor(private readonly deps: { store: JobStore; objects: ObjectStore }) {}

  /** Delete the file's record and (best effort, else the janitor) its objects. */
  async delete(id: string, nowMs: number, onObjectsFailed: (err: unknown) => void): Promise<DeleteFileResult> {
    const result = await this.deps.store.deleteFile(id, nowMs);
    if (result?.deleted) await this.empty(result.trash).catch(onObjectsFailed);
    return result;
  }

  /** Delete the objects of these trash entries, then forget the entries; throws on the first failure. */
  async empty(entries: readonly string[]): Promise<number> {
    const { store, objects } = this.deps;
    const done: string[] = [];
    try {
      for (const entry of entries) {
        if (entry.startsWith(KEY)) await objects.delete(entry.slice(KEY.length));
        else if (entry.startsWith(PREFIX)) await objects.deletePrefix(entry.slice(PREFIX.length));
        done.push(entry);
      }
    } finally {
      await store.clearTrash(done);
    }
    return done.length;
  }
}
