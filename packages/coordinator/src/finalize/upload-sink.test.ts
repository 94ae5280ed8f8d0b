import type { Readable } from "node:stream";
import type { ObjectStore, UploadBody } from "@batchgen/core";
import { describe, expect, it } from "vitest";
import { UploadSink } from "./upload-sink.js";

/** A test double of an object store with only `upload`, which reads the body slowly (or never). */
function slowStore(opts: { readDelayMs?: number; never?: boolean } = {}) {
  let stream!: Readable;
  let fail!: (err: Error) => void;
  const chunks: Buffer[] = [];
  const store = {
    upload(_key: string, body: UploadBody): Promise<{ size: number }> {
      stream = body as Readable;
      return new Promise((resolve, reject) => {
        fail = reject;
        if (opts.never) return;
        void (async () => {
          for await (const chunk of stream) {
            chunks.push(chunk as Buffer);
            await new Promise((r) => setTimeout(r, opts.readDelayMs ?? 0));
          }
          resolve({ size: chunks.reduce((n, c) => n + c.length, 0) });
        })().catch(reject);
      });
    },
  } as unknown as ObjectStore;
  return { store, stream: () => stream, chunks, fail: (err: Error) => fail(err) };
}

describe("UploadSink", () => {
  it("waits for the upload to drain on every flush without piling up listeners", async () => {
    const { store, stream, chunks } = slowStore({ readDelayMs: 1 });
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      const sink = new UploadSink(store, "out.jsonl");
      let drains = 0;
      stream().on("drain", () => drains++);
      const baseline = { close: stream().listenerCount("close"), drain: stream().listenerCount("drain") };
      const line = "x".repeat(1000);
      let maxClose = 0;
      let maxDrain = 0;
      const lines = 3_000; // ~3 MB: about 45 flushes of 64 KiB, each over the stream's buffer
      for (let i = 0; i < lines; i++) {
        await sink.writeLine(`${i}:${line}`);
        maxClose = Math.max(maxClose, stream().listenerCount("close"));
        maxDrain = Math.max(maxDrain, stream().listenerCount("drain"));
      }
      const { size } = await sink.end();
      // The flushes really waited for the reader (that is the path that leaked).
      expect(drains).toBeGreaterThan(20);
      expect(maxClose - baseline.close).toBeLessThanOrEqual(0);
      expect(maxDrain - baseline.drain).toBeLessThanOrEqual(0);
      expect(warnings.filter((w) => w.name === "MaxListenersExceededWarning")).toEqual([]);
      // ...and every line arrived once, in order.
      const text = Buffer.concat(chunks).toString("utf8");
      expect(size).toBe(Buffer.byteLength(text));
      const got = text.split("\n").slice(0, -1);
      expect(got).toHaveLength(lines);
      expect(got.every((l, i) => l === `${i}:${line}`)).toBe(true);
      expect(sink.lines).toBe(lines);
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("a flush waiting on a stuck upload ends with the upload's error, leaving no listener", async () => {
    const { store, stream, fail } = slowStore({ never: true });
    const sink = new UploadSink(store, "out.jsonl");
    const baseline = { close: stream().listenerCount("close"), drain: stream().listenerCount("drain") };
    const writing = (async () => {
      for (let i = 0; i < 200; i++) await sink.writeLine("y".repeat(1000));
    })();
    await new Promise((r) => setTimeout(r, 20));
    expect(stream().listenerCount("drain")).toBe(baseline.drain + 1); // stuck, waiting to drain
    fail(new Error("upload refused"));
    await expect(writing).rejects.toThrow("upload refused");
    expect(stream().listenerCount("close")).toBe(baseline.close);
    expect(stream().listenerCount("drain")).toBe(baseline.drain);
    await expect(sink.writeLine("z")).resolves.toBeUndefined(); // buffered only
    await expect(sink.end()).rejects.toThrow("upload refused");
  });
});
