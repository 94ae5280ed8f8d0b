// Writes a batch's output.jsonl and errors.jsonl into a folder (atomically: a partial
// download never looks like a finished one).
import { createWriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import type { ApiClient, Batch } from "./api-client.js";
import { CliError } from "./cli-error.js";

export interface DownloadedFiles {
  dir: string;
  output: string | null;
  errors: string | null;
}

export async function downloadResults(client: ApiClient, batch: Batch, dir: string): Promise<DownloadedFiles> {
  if (!batch.output_file_id && !batch.error_file_id) {
    const why =
      batch.status === "failed"
        ? "it failed validation; see its errors with `batchgen status`"
        : `it is ${batch.status}${["validating", "in_progress", "finalizing", "cancelling"].includes(batch.status) ? "; wait for it to finish (`batchgen submit --wait` or `batchgen status`)" : ""}`;
    throw new CliError(`batch ${batch.id} has no result files yet: ${why}.`);
  }
  const out = resolve(dir);
  await mkdir(out, { recursive: true });
  const files: DownloadedFiles = { dir: out, output: null, errors: null };
  if (batch.output_file_id) files.output = await save(client, batch.output_file_id, join(out, "output.jsonl"));
  if (batch.error_file_id) files.errors = await save(client, batch.error_file_id, join(out, "errors.jsonl"));
  return files;
}

async function save(client: ApiClient, fileId: string, path: string): Promise<string> {
  const tmp = `${path}.part`;
  try {
    await pipeline(await client.fileContent(fileId), createWriteStream(tmp));
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    if (err instanceof CliError) throw err;
    throw new CliError(`could not write ${path}: ${(err as Error).message}`);
  }
  return path;
}
