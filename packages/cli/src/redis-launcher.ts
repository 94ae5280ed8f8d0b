// A private redis-server for `batchgen up` when REDIS_URL is not set: loopback only,
// on a free port, its data (append-only file) in the data folder so batches survive a
// restart of `batchgen up`.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { Socket } from "node:net";
import { CliError } from "./cli-error.js";
import { freePort } from "./free-port.js";

export interface RedisServer {
  url: string;
  stop(): Promise<void>;
}

const NOT_INSTALLED =
  "batchgen up needs Redis, and no `redis-server` was found on PATH. Install it " +
  "(Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) " +
  "or set REDIS_URL to a Redis you run (e.g. REDIS_URL=redis://127.0.0.1:6379).";

export async function startRedisServer(dir: string, opts: { binary?: string } = {}): Promise<RedisServer> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "yes", "--protected-mode", "yes"];
  const child = spawn(opts.binary ?? "redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const spawnError = new Promise<never>((_, reject) =>
    child.once("error", (err: NodeJS.ErrnoException) =>
      reject(err.code === "ENOENT" ? new CliError(NOT_INSTALLED) : new CliError(`cannot start redis-server: ${err.message}`)),
    ),
  );
  spawnError.catch(() => {});
  await Promise.race([spawnError, waitForPing(child, port, () => output)]);
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: () => stopChild(child),
  };
}

async function waitForPing(child: ChildProcess, port: number, output: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new CliError(`redis-server exited at start (code ${child.exitCode}):\n${output().trim().split("\n").slice(-5).join("\n")}`);
    }
    if (await ping(port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGKILL");
  throw new CliError("redis-server did not answer within 15 s.");
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    s.setTimeout(1_000, () => {
      s.destroy();
      resolve(false);
    });
    s.once("error", () => resolve(false));
    s.connect(port, "127.0.0.1", () => {
      s.write("PING\r\n");
      s.once("data", (d) => {
        s.destroy();
        resolve(d.toString().startsWith("+PONG"));
      });
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM"); // redis flushes its append-only file on SIGTERM
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}
