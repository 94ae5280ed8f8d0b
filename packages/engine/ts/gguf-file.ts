// The metadata and tensor table of a GGUF file (the llama.cpp / Ollama format),
// read in TypeScript without the native engine: the tokenizer (gguf-tokenizer.ts)
// and `batchgen inspect-model` need the vocabulary, the chat template and the
// tensor shapes, not the weights, so only the header is read (a few MB), never
// the tensor data. The engine's own reader is src/model/gguf.cpp.
import { open, stat } from "node:fs/promises";
import { readdir } from "node:fs/promises";
import { join } from "node:path";

import { ModelLoadError, UnsupportedError } from "./errors.js";

export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** ggml type number (GGML_TYPE_NAMES names it). */
  type: number;
  /** Row-major (Hugging Face) order: the file's ne reversed. */
  shape: number[];
}

/** ggml type names by number, for the types the format defines. */
export const GGML_TYPE_NAMES: Record<number, string> = {
  0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K",
  12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
  20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64",
  29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
};

/** Bits per weight of each ggml type (block bytes * 8 / block elements). */
export const GGML_TYPE_BITS: Record<number, number> = {
  0: 32, 1: 16, 2: 4.5, 3: 5, 6: 5.5, 7: 6, 8: 8.5, 9: 10, 10: 2.625, 11: 3.4375, 12: 4.5, 13: 5.5, 14: 6.5625,
  15: 9.125, 30: 16,
};

export class GgufFile {
  private constructor(
    readonly path: string,
    readonly version: number,
    readonly metadata: Map<string, GgufValue>,
    readonly tensors: GgufTensorInfo[],
  ) {}

  /** Reads the header of `path`. Throws ModelLoadError naming the file and what is wrong. */
  static async open(path: string): Promise<GgufFile> {
    const reader = await HeaderReader.open(path);
    try {
      const magic = await reader.bytes(4, "the magic number");
      if (Buffer.from(magic).toString("latin1") !== "GGUF") throw new ModelLoadError(`${path}: not a GGUF file (no GGUF magic number)`);
      const version = await reader.u32("the version");
      if (version !== 2 && version !== 3) throw new UnsupportedError(`${path}: GGUF version ${version} is not supported (2 and 3 are)`);
      const nTensors = Number(await reader.u64("the tensor count"));
      const nKv = Number(await reader.u64("the metadata count"));
      if (nTensors > reader.size / 8 || nKv > reader.size / 8) {
        throw new ModelLoadError(`${path}: GGUF header claims ${nTensors} tensors and ${nKv} metadata entries; the file is truncated or corrupt`);
      }
      const metadata = new Map<string, GgufValue>();
      for (let i = 0; i < nKv; i++) {
        const key = await reader.string(`metadata key ${i}`);
        const type = await reader.u32(`metadata '${key}'`);
        metadata.set(key, await reader.value(type, `metadata '${key}'`));
      }
      const tensors: GgufTensorInfo[] = [];
      for (let i = 0; i < nTensors; i++) {
        const name = await reader.string(`tensor name ${i}`);
        const nDims = await reader.u32(`tensor '${name}'`);
        if (nDims === 0 || nDims > 4) throw new ModelLoadError(`${path}: tensor '${name}' has ${nDims} dimensions`);
        const ne: number[] = [];
        for (let d = 0; d < nDims; d++) ne.push(Number(await reader.u64(`tensor '${name}'`)));
        const type = await reader.u32(`tensor '${name}'`);
        await reader.u64(`tensor '${name}'`); // data offset: the weights are the engine's business
        tensors.push({ name, type, shape: ne.reverse() });
      }
      return new GgufFile(path, version, metadata, tensors);
    } finally {
      await reader.close();
    }
  }

  get(key: string): GgufValue | undefined {
    return this.metadata.get(key);
  }

  string(key: string): string | undefined {
    const v = this.metadata.get(key);
    return typeof v === "string" ? v : undefined;
  }

  number(key: string): number | undefined {
    const v = this.metadata.get(key);
    return typeof v === "number" ? v : typeof v === "bigint" ? Number(v) : typeof v === "boolean" ? Number(v) : undefined;
  }

  get architecture(): string {
    const a = this.string("general.architecture");
    if (!a) throw new ModelLoadError(`${this.path}: GGUF metadata 'general.architecture' is missing`);
    return a;
  }
}

/**
 * The GGUF file `path` names: itself when it is a .gguf file, or the single .gguf
 * file of the directory `path` when it holds no config.json (a Hugging Face
 * directory wins), as the engine decides. null when there is none.
 */
export async function findGgufFile(path: string): Promise<string | null> {
  const st = await stat(path).catch(() => null);
  if (!st) return null;
  if (st.isFile()) return path.endsWith(".gguf") ? path : null;
  if (!st.isDirectory()) return null;
  const names = await readdir(path);
  if (names.includes("config.json")) return null;
  const found = names.filter((n) => n.endsWith(".gguf")).sort();
  if (found.length > 1) throw new ModelLoadError(`${path} holds several GGUF files (${found.join(", ")}); name the one to load`);
  return found.length === 1 ? join(path, found[0]!) : null;
}

/** Sequential reads over a file, fetched in chunks so a 250 MB model costs a few MB of reading. */
class HeaderReader {
  private buf = Buffer.alloc(0);
  private bufStart = 0; // file offset of buf[0]
  private pos = 0; // file offset of the next read

  private constructor(
    private readonly path: string,
    private readonly handle: Awaited<ReturnType<typeof open>>,
    readonly size: number,
  ) {}

  static async open(path: string): Promise<HeaderReader> {
    let handle;
    try {
      handle = await open(path, "r");
    } catch (err) {
      throw new ModelLoadError(`cannot open ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    const { size } = await handle.stat();
    return new HeaderReader(path, handle, size);
  }

  close(): Promise<void> {
    return this.handle.close();
  }

  async bytes(n: number, what: string): Promise<Uint8Array> {
    if (n > this.size - this.pos) {
      throw new ModelLoadError(`${this.path}: truncated GGUF file: ${what} runs past the end of the file (offset ${this.pos})`);
    }
    const end = this.pos + n;
    if (this.pos < this.bufStart || end > this.bufStart + this.buf.length) {
      const want = Math.min(Math.max(n, 4 << 20), this.size - this.pos);
      const chunk = Buffer.alloc(want);
      await this.handle.read(chunk, 0, want, this.pos);
      this.buf = chunk;
      this.bufStart = this.pos;
    }
    const out = this.buf.subarray(this.pos - this.bufStart, end - this.bufStart);
    this.pos = end;
    return out;
  }

  async u32(what: string): Promise<number> {
    const b = await this.bytes(4, what);
    return Buffer.from(b.buffer, b.byteOffset, 4).readUInt32LE(0);
  }

  async u64(what: string): Promise<bigint> {
    const b = await this.bytes(8, what);
    return Buffer.from(b.buffer, b.byteOffset, 8).readBigUInt64LE(0);
  }

  async string(what: string): Promise<string> {
    const n = await this.u64(what);
    if (n > BigInt(this.size)) throw new ModelLoadError(`${this.path}: ${what}: string length ${n} is impossible`);
    return Buffer.from(await this.bytes(Number(n), what)).toString("utf8");
  }

  async value(type: number, what: string): Promise<GgufValue> {
    if (type === 8) return this.string(what);
    if (type === 9) {
      const elem = await this.u32(what);
      const count = Number(await this.u64(what));
      if (count > this.size) throw new ModelLoadError(`${this.path}: ${what} claims ${count} items`);
      const size = SCALAR_SIZES[elem];
      if (elem !== 8 && elem !== 9 && size === undefined) throw new ModelLoadError(`${this.path}: ${what} is an array of unknown type ${elem}`);
      const items: GgufValue[] = new Array(count);
      if (size !== undefined) {
        const raw = Buffer.from(await this.bytes(count * size, what));
        for (let i = 0; i < count; i++) items[i] = scalarAt(elem, raw, i * size);
      } else {
        for (let i = 0; i < count; i++) items[i] = await this.value(elem, what);
      }
      return items;
    }
    const size = SCALAR_SIZES[type];
    if (size === undefined) throw new ModelLoadError(`${this.path}: ${what} has unknown type ${type}`);
    return scalarAt(type, Buffer.from(await this.bytes(size, what)), 0);
  }
}

const SCALAR_SIZES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

function scalarAt(type: number, b: Buffer, at: number): GgufValue {
  switch (type) {
    case 0: return b.readUInt8(at);
    case 1: return b.readInt8(at);
    case 2: return b.readUInt16LE(at);
    case 3: return b.readInt16LE(at);
    case 4: return b.readUInt32LE(at);
    case 5: return b.readInt32LE(at);
    case 6: return b.readFloatLE(at);
    case 7: return b.readUInt8(at) !== 0;
    case 10: return b.readBigUInt64LE(at);
    case 11: return b.readBigInt64LE(at);
    default: return b.readDoubleLE(at);
  }
}
