// A tiny structured logger: one JSON object a line, level from LOG_LEVEL.
import { BatchgenError } from "./errors.js";

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";
const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(msg: string, fields?: object): void;
  info(msg: string, fields?: object): void;
  warn(msg: string, fields?: object): void;
  error(msg: string, fields?: object): void;
  child(bindings: object): Logger;
}

export interface LoggerOptions {
  /** debug | info | warn | error | silent; default: LOG_LEVEL, else info. */
  level?: string;
  /** Default: process.stderr. */
  stream?: NodeJS.WritableStream;
}

function parseLevel(level: string, setting: string): LogLevel {
  const l = level.trim().toLowerCase();
  if (l in LEVELS) return l as LogLevel;
  throw new BatchgenError("invalid_request", `${setting} must be one of ${Object.keys(LEVELS).join(", ")}; got ${JSON.stringify(level)}`, {
    param: setting,
  });
}

// Errors do not serialise to JSON by themselves; keep what helps an operator.
function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const e = value as Error & { code?: unknown; cause?: unknown };
    return { name: e.name, message: e.message, code: e.code, stack: e.stack, cause: e.cause };
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}

class JsonLogger implements Logger {
  constructor(
    private readonly threshold: number,
    private readonly stream: NodeJS.WritableStream,
    private readonly bindings: Record<string, unknown>,
  ) {}

  private write(level: Exclude<LogLevel, "silent">, msg: string, fields?: object): void {
    if (LEVELS[level] < this.threshold) return;
    const record = { time: new Date().toISOString(), level, ...this.bindings, msg, ...fields };
    let line: string;
    try {
      line = JSON.stringify(record, replacer);
    } catch {
      line = JSON.stringify({ time: record.time, level, ...this.bindings, msg, fields: "[unserialisable]" });
    }
    this.stream.write(line + "\n");
  }

  debug(msg: string, fields?: object): void {
    this.write("debug", msg, fields);
  }
  info(msg: string, fields?: object): void {
    this.write("info", msg, fields);
  }
  warn(msg: string, fields?: object): void {
    this.write("warn", msg, fields);
  }
  error(msg: string, fields?: object): void {
    this.write("error", msg, fields);
  }
  child(bindings: object): Logger {
    return new JsonLogger(this.threshold, this.stream, { ...this.bindings, ...bindings });
  }
}

/** A logger named `name`; an unknown level throws BatchgenError naming LOG_LEVEL. */
export function createLogger(name: string, opts: LoggerOptions = {}): Logger {
  const level =
    opts.level !== undefined ? parseLevel(opts.level, "level") : parseLevel(process.env.LOG_LEVEL ?? "info", "LOG_LEVEL");
  return new JsonLogger(LEVELS[level], opts.stream ?? process.stderr, { name });
}
