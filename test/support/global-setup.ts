// Services every test run may need, started once per run on ports of its own so a
// Redis already on 6379 (or a second run) never collides:
//  - redis-server (REDIS_URL), unless BATCHGEN_TEST_REDIS_URL names one to use.
// Tests read the URL from process.env.REDIS_URL and isolate themselves with a
// random BullMQ prefix / key namespace.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForRedis(child: ChildProcess, port: number): Promise<void> {
  const { Socket } = await import("node:net");
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = new Socket();
      s.once("error", () => resolve(false));
      s.connect(port, "127.0.0.1", () => {
        s.write("PING\r\n");
        s.once("data", (d) => {
          s.destroy();
          resolve(d.toString().startsWith("+PONG"));
        });
      });
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("redis-server did not answer PING within 10 s");
}

export default async function setup(): Promise<() => Promise<void>> {
  const cleanups: Array<() => Promise<void> | void> = [];
  if (process.env.BATCHGEN_TEST_REDIS_URL) {
    process.env.REDIS_URL = process.env.BATCHGEN_TEST_REDIS_URL;
  } else {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "bg-redis-"));
    const child = spawn(
      "redis-server",
      // AOF on (without fsync: the OS flushes): the coordinator refuses a Redis that keeps nothing.
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "no", "--dir", dir],
      { stdio: "ignore" },
    );
    child.on("error", (err) => {
      throw new Error(`cannot start redis-server (is it installed? apt-get install redis-server): ${err.message}`);
    });
    await waitForRedis(child, port);
    process.env.REDIS_URL = `redis://127.0.0.1:${port}`;
    cleanups.push(() => {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    });
  }
  return async () => {
    for (const c of cleanups.reverse()) await c();
  };
}
