import { Counter, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import type { Logger } from "./logger.js";
import { SwallowedErrors } from "./swallowed-errors.js";

/** A Logger double that keeps each call as [level, msg, fields]. */
function recordingLogger(): { logger: Logger; calls: Array<[string, string, Record<string, unknown>]> } {
  const calls: Array<[string, string, Record<string, unknown>]> = [];
  const at = (level: string) => (msg: string, fields: object = {}) => void calls.push([level, msg, fields as Record<string, unknown>]);
  const logger: Logger = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), child: () => logger };
  return { logger, calls };
}

describe("SwallowedErrors", () => {
  it("logs and counts an error of a best-effort step under its site", async () => {
    const registry = new Registry();
    const counter = new Counter({ name: "t_swallowed_total", help: "t", labelNames: ["site"], registers: [registry] });
    const { logger, calls } = recordingLogger();
    const swallowed = new SwallowedErrors(logger, counter);
    await Promise.reject(new Error("redis down")).catch(swallowed.at("ingest.release_lock"));
    await Promise.reject(new Error("again")).catch(swallowed.at("ingest.release_lock"));
    await Promise.reject(new Error("store")).catch(swallowed.at("finalize.delete_parts", { batch: "b1" }));
    const text = await registry.metrics();
    expect(text).toContain('t_swallowed_total{site="ingest.release_lock"} 2');
    expect(text).toContain('t_swallowed_total{site="finalize.delete_parts"} 1');
    expect(calls.map(([level]) => level)).toEqual(["warn", "warn", "warn"]);
    expect(calls[0]![2]).toMatchObject({ site: "ingest.release_lock", err: { message: "redis down" } });
    expect(calls[2]![2]).toMatchObject({ site: "finalize.delete_parts", batch: "b1" });
  });

  it("logs a rejection of a never-rejecting promise at error and counts it under its site", async () => {
    const registry = new Registry();
    const counter = new Counter({ name: "t_swallowed_total", help: "t", labelNames: ["site"], registers: [registry] });
    const { logger, calls } = recordingLogger();
    await Promise.reject(new Error("boom")).catch(new SwallowedErrors(logger, counter).bug("session.finish_line", { line: 3 }));
    expect(await registry.metrics()).toContain('t_swallowed_total{site="session.finish_line"} 1');
    expect(calls).toHaveLength(1);
    expect(calls[0]![0]).toBe("error");
    expect(calls[0]![2]).toMatchObject({ site: "session.finish_line", line: 3, err: { message: "boom" } });
  });
});
