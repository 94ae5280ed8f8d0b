// A Node.js child process for end-to-end tests: its stdout/stderr lines are kept (the
// last few hundred, shown when something fails), waitForLine() waits for a log line,
// and stop() ends it (SIGTERM, then SIGKILL) so no test leaves a process behind.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

const KEEP_LINES = 400;

// Children still running when the test process exits (a failed hook, a timeout) die with it.
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

export class NodeProcess {
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  private readonly listeners = new Set<(line: string) => void>();

  /** `shell`: a bash snippet run first (e.g. `ulimit -f 8`), then node with `args` in its place. */
  constructor(
    readonly name: string,
    args: string[],
    env: Record<string, string | undefined> = {},
    shell?: string,
  ) {
    const [command, argv] = shell ? ["bash", ["-c", `${shell} && exec "$0" "$@"`, process.execPath, ...args]] : [process.execPath, args];
    this.child = spawn(command, argv, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    live.add(this.child);
    // "close", not "exit": it comes once stdout and stderr are read to their end, so a
    // test that awaits `exited` sees every line the process wrote before it ended.
    this.exited = new Promise((resolve) =>
      this.child.once("close", (code, signal) => {
        live.delete(this.child);
        resolve({ code, signal });
      }),
    );
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      createInterface({ input: stream }).on("line", (line) => {
        this.lines.push(line);
        if (this.lines.length > KEEP_LINES) this.lines.shift();
        for (const l of this.listeners) l(line);
      });
    }
  }

  /** Calls `listener` with every line from now on. */
  onLine(listener: (line: string) => void): void {
    this.listeners.add(listener);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The first line (already seen or still to come) that `match` accepts, parsed as JSON when it is. */
  waitForLine(match: (line: string) => boolean, timeoutMs: number): Promise<string> {
    const seen = this.lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const done = (err: Error | null, line?: string) => {
        clearTimeout(timer);
        this.listeners.delete(listener);
        if (err) reject(err);
        else resolve(line!);
      };
      const listener = (line: string) => {
        if (match(line)) done(null, line);
      };
      const timer = setTimeout(() => done(new Error(`${this.name}: no expected log line within ${timeoutMs} ms\n${this.tail()}`)), timeoutMs);
      this.listeners.add(listener);
      void this.exited.then(({ code, signal }) => done(new Error(`${this.name} exited (code ${code}, signal ${signal})\n${this.tail()}`)));
    });
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  async stop(graceMs = 3_000): Promise<void> {
    if (!this.running) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  tail(lines = 40): string {
    return this.lines.slice(-lines).map((l) => `  [${this.name}] ${l}`).join("\n");
  }
}

/** A JSON log line with this `msg`. */
export function logMessage(line: string, msg: string): Record<string, unknown> | null {
  if (!line.startsWith("{")) return null;
  try {
    const record = JSON.parse(line) as Record<string, unknown>;
    return record.msg === msg ? record : null;
  } catch {
    return null;
  }
}
