import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { BatchgenError } from "./errors.js";
import { createLogger } from "./logger.js";

function sink(): { stream: Writable; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return { stream, lines: () => chunks.join("").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l)) };
}

const savedLevel = process.env.LOG_LEVEL;
afterEach(() => {
  if (savedLevel === undefined) delete process.env.LOG_LEVEL;
  else process.env.LOG_LEVEL = savedLevel;
});

describe("createLogger", () => {
  it("writes one JSON object a line with time, level, name, msg and fields", () => {
    const s = sink();
    const log = createLogger("coordinator", { level: "info", stream: s.stream });
    log.info("batch created", { batchId: "batch_1", lines: 3 });
    const [line] = s.lines();
    expect(line).toMatchObject({ level: "info", name: "coordinator", msg: "batch created", batchId: "batch_1", lines: 3 });
    expect(Number.isNaN(Date.parse(String(line!.time)))).toBe(false);
  });

  it("drops records below the level", () => {
    const s = sink();
    const log = createLogger("w", { level: "warn", stream: s.stream });
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    expect(s.lines().map((l) => l.level)).toEqual(["warn", "error"]);
    const quiet = sink();
    createLogger("w", { level: "silent", stream: quiet.stream }).error("nothing");
    expect(quiet.lines()).toEqual([]);
  });

  it("takes its level from LOG_LEVEL and rejects an unknown one naming it", () => {
    process.env.LOG_LEVEL = "debug";
    const s = sink();
    createLogger("x", { stream: s.stream }).debug("seen");
    expect(s.lines()).toHaveLength(1);
    process.env.LOG_LEVEL = "loud";
    expect(() => createLogger("x", { stream: s.stream })).toThrow(/LOG_LEVEL/);
    expect(() => createLogger("x", { stream: s.stream })).toThrow(BatchgenError);
  });

  it("child loggers add bindings; errors are serialised with message and code", () => {
    const s = sink();
    const log = createLogger("worker", { level: "debug", stream: s.stream }).child({ workerId: "w1" }).child({ shard: 4 });
    log.error("lease failed", { err: new BatchgenError("unavailable", "redis down") });
    const [line] = s.lines();
    expect(line).toMatchObject({ name: "worker", workerId: "w1", shard: 4, msg: "lease failed" });
    expect(line!.err).toMatchObject({ name: "BatchgenError", message: "redis down", code: "unavailable" });
  });

  it("survives fields that cannot be serialised", () => {
    const s = sink();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    createLogger("x", { level: "info", stream: s.stream }).info("odd", { cyclic, big: 10n });
    expect(s.lines()[0]).toMatchObject({ msg: "odd", fields: "[unserialisable]" });
  });
});
