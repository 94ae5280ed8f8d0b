import { PassThrough } from "node:stream";
import { createLogger } from "@batchgen/core";
import { Counter, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { ProcessGuard } from "./process-guard.js";

function logged(): { logger: ReturnType<typeof createLogger>; lines: () => Array<Record<string, unknown>> } {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (d: Buffer) => (text += d.toString()));
  const logger = createLogger("test", { level: "debug", stream });
  return { logger, lines: () => text.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("ProcessGuard", () => {
  it("logs and counts what escapes every handler while installed, and lets go on uninstall", async () => {
    const registry = new Registry();
    const counter = new Counter({ name: "t_uncaught_total", help: "t", labelNames: ["kind"], registers: [registry] });
    const { logger, lines } = logged();
    const guard = new ProcessGuard(logger, counter);
    const before = process.listenerCount("uncaughtException");
    guard.install();
    guard.install(); // idempotent
    expect(process.listenerCount("uncaughtException")).toBe(before + 1);
    // Call the guard's own listeners (emitting the events for real would reach the test runner's too).
    const onException = process.listeners("uncaughtException").at(-1)!;
    const onRejection = process.listeners("unhandledRejection").at(-1)!;
    onException(new Error("Unexpected end of form"), "uncaughtException");
    onRejection(new Error("nobody awaited me"), Promise.resolve());
    const text = await registry.metrics();
    expect(text).toContain('t_uncaught_total{kind="uncaught_exception"} 1');
    expect(text).toContain('t_uncaught_total{kind="unhandled_rejection"} 1');
    expect(lines().map((l) => l.level)).toEqual(["error", "error"]);
    guard.uninstall();
    expect(process.listenerCount("uncaughtException")).toBe(before);
  });
});
