// Writes tensors in the safetensors format (https://huggingface.co/docs/safetensors):
// an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
// shape and [begin, end) byte offsets into the data, then the data, contiguous
// with no holes. The header is padded with spaces to a multiple of 8 bytes, and
// every tensor in a file has the same dtype, so every tensor starts aligned.
//
// Values are produced a chunk at a time and streamed to disk, so a model of any
// size is written in bounded memory. Past `maxShardBytes` the tensors are split
// over model-0000i-of-0000n.safetensors files with a model.safetensors.index.json,
// as Hugging Face's save_pretrained does. Each file is written under a temporary
// name and renamed when complete, so a crash never leaves a file that looks whole.
import { open, rename, rm, writeFile } from "node:fs/promises";
import { endianness } from "node:os";
import { join } from "node:path";

export type SafetensorsDType = "F32" | "BF16";

export interface TensorSource {
  name: string;
  shape: number[];
  /** Returns a function that fills `out` with the tensor's next out.length values (row-major). */
  createFiller(): (out: Float32Array) => void;
}

export interface WriteSafetensorsOptions {
  dtype: SafetensorsDType;
  /** Start a new shard before a tensor that would take a shard past this many bytes. Default: one file. */
  maxShardBytes?: number;
}

export interface WrittenSafetensors {
  /** File names written in the directory (shards, then the index if any). */
  files: string[];
  /** Bytes of tensor data over all files. */
  totalBytes: number;
}

export const SINGLE_FILE_NAME = "model.safetensors";
export const INDEX_FILE_NAME = "model.safetensors.index.json";
const CHUNK_ELEMENTS = 1 << 20;

export async function writeSafetensors(
  dir: string,
  tensors: TensorSource[],
  options: WriteSafetensorsOptions,
): Promise<WrittenSafetensors> {
  if (endianness() !== "LE") throw new Error("safetensors are little-endian; this machine is big-endian");
  const elementBytes = options.dtype === "F32" ? 4 : 2;
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`tensor ${t.name} is listed twice`);
    names.add(t.name);
  }
  const shards = planShards(tensors, elementBytes, options.maxShardBytes ?? Number.POSITIVE_INFINITY);
  const fileNames =
    shards.length === 1
      ? [SINGLE_FILE_NAME]
      : shards.map((_, i) => `model-${pad5(i + 1)}-of-${pad5(shards.length)}.safetensors`);

  const written: string[] = [];
  const weightMap: Record<string, string> = {};
  let totalBytes = 0;
  try {
    for (const [i, shard] of shards.entries()) {
      const fileName = fileNames[i] as string;
      await writeFileAtomically(join(dir, fileName), (path) => writeOneFile(path, shard, options.dtype));
      written.push(fileName);
      for (const t of shard) weightMap[t.name] = fileName;
      totalBytes += shard.reduce((sum, t) => sum + numel(t.shape) * elementBytes, 0);
    }
    if (shards.length > 1) {
      const index = { metadata: { total_size: totalBytes }, weight_map: sortKeys(weightMap) };
      await writeFileAtomically(join(dir, INDEX_FILE_NAME), (path) =>
        writeFile(path, JSON.stringify(index, null, 2) + "\n"),
      );
      written.push(INDEX_FILE_NAME);
    }
  } catch (err) {
    // Shards of a half-written set are useless; leave nothing that a loader could pick up.
    await Promise.all(written.map((f) => rm(join(dir, f), { force: true })));
    throw err;
  }
  return { files: written, totalBytes };
}

/** Greedy in list order, like transformers' shard_checkpoint: a tensor larger than the limit gets a shard alone. */
function planShards(tensors: TensorSource[], elementBytes: number, maxShardBytes: number): TensorSource[][] {
  const shards: TensorSource[][] = [[]];
  let current = 0;
  for (const t of tensors) {
    const bytes = numel(t.shape) * elementBytes;
    const last = shards[shards.length - 1] as TensorSource[];
    if (last.length > 0 && current + bytes > maxShardBytes) {
      shards.push([t]);
      current = bytes;
    } else {
      last.push(t);
      current += bytes;
    }
  }
  return shards;
}

async function writeOneFile(path: string, tensors: TensorSource[], dtype: SafetensorsDType): Promise<void> {
  const elementBytes = dtype === "F32" ? 4 : 2;
  // Data in name order, as the safetensors library lays it out.
  const ordered = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let offset = 0;
  for (const t of ordered) {
    const bytes = numel(t.shape) * elementBytes;
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json, "utf8");
  json += " ".repeat((8 - (jsonBytes % 8)) % 8);
  const headerBytes = Buffer.from(json, "utf8");
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));

  const fh = await open(path, "w");
  try {
    await writeAll(fh, prefix);
    await writeAll(fh, headerBytes);
    const values = new Float32Array(CHUNK_ELEMENTS);
    const bf16 = new Uint16Array(CHUNK_ELEMENTS);
    for (const t of ordered) {
      const fill = t.createFiller();
      let left = numel(t.shape);
      while (left > 0) {
        const n = Math.min(left, CHUNK_ELEMENTS);
        const chunk = values.subarray(0, n);
        fill(chunk);
        if (dtype === "F32") {
          await writeAll(fh, new Uint8Array(chunk.buffer, chunk.byteOffset, n * 4));
        } else {
          toBf16(chunk, bf16);
          await writeAll(fh, new Uint8Array(bf16.buffer, 0, n * 2));
        }
        left -= n;
      }
    }
  } finally {
    await fh.close();
  }
}

/** f32 -> bf16 with round-to-nearest-even, as torch's .to(torch.bfloat16) does; NaN stays NaN. */
export function toBf16(src: Float32Array, dst: Uint16Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) {
    const u = bits[i] as number;
    if ((u & 0x7fffffff) > 0x7f800000) {
      dst[i] = (u >>> 16) | 0x40;
    } else {
      dst[i] = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
    }
  }
}

async function writeAll(fh: import("node:fs/promises").FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done);
    done += bytesWritten;
  }
}

async function writeFileAtomically(path: string, write: (tmpPath: string) => Promise<void>): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await write(tmp);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function pad5(n: number): string {
  return String(n).padStart(5, "0");
}

function sortKeys(map: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(map).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
