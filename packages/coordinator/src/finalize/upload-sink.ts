// A line sink that streams into an object-store upload with backpressure, so two result
// files can be written in one pass over the parts without holding either in memory.
import { PassThrough } from "node:stream";
import type { ObjectStore } from "@batchgen/core";

const CHUNK_BYTES = 64 * 1024;

export class UploadSink {
  private readonly stream = new PassThrough();
  private readonly uploaded: Promise<{ size: number }>;
  private buffer: string[] = [];
  private bufferChars = 0;
  private failure: unknown = null;
  lines = 0;

  constructor(objects: ObjectStore, key: string) {
    this.uploaded = objects.upload(key, this.stream);
    this.uploaded.catch((err: unknown) => {
      this.failure = err;
      this.stream.destroy();
    });
  }

  async writeLine(line: string): Promise<void> {
    this.buffer.push(line, "\n");
    this.bufferChars += line.length + 1;
    this.lines++;
    if (this.bufferChars >= CHUNK_BYTES) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.buffer.length === 0) return;
    const chunk = Buffer.from(this.buffer.join(""), "utf8");
    this.buffer = [];
    this.bufferChars = 0;
    if (!this.stream.write(chunk)) await this.drained();
    if (this.failure) throw this.failure;
  }

  /** Waits for "drain" or "close", whichever comes first, and leaves no listener behind. */
  private drained(): Promise<void> {
    const stream = this.stream;
    if (stream.destroyed) return Promise.resolve(); // "close" has fired already, or is on its way
    return new Promise<void>((resolve) => {
      const done = () => {
        stream.off("drain", done);
        stream.off("close", done);
        resolve();
      };
      stream.on("drain", done);
      stream.on("close", done);
    });
  }

  /** Finish the upload; rejects if it failed. */
  async end(): Promise<{ size: number }> {
    await this.flush();
    this.stream.end();
    return this.uploaded;
  }

  /** Give up: end the stream and swallow the upload's outcome. */
  abort(): void {
    this.stream.destroy();
    // The caller is already failing with the error that made it give up; the upload's own
    // rejection (caused by this destroy) adds nothing.
    this.uploaded.catch(() => undefined);
  }
}
