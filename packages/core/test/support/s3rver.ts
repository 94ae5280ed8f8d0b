// A real S3-compatible server (s3rver) on a free loopback port, in its own temp folder,
// with one random bucket: for tests of anything that talks S3. Credentials: S3RVER/S3RVER,
// path-style URLs (forcePathStyle: true).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export interface S3rverHandle {
  endpoint: string;
  bucket: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** "METHOD URL" of every request the server has received so far. */
  requests: string[];
  /** An s3:// URL for createObjectStore, under `prefix`. */
  url(prefix: string): string;
  stop(): Promise<void>;
}

const LAUNCHER = join(dirname(fileURLToPath(import.meta.url)), "s3rver-server.cjs");

export async function startS3rver(opts: { bucket?: string } = {}): Promise<S3rverHandle> {
  const bucket = opts.bucket ?? `bg-test-${randomBytes(4).toString("hex")}`;
  const dir = mkdtempSync(join(tmpdir(), "bg-s3rver-"));
  const child = spawn(process.execPath, ["--openssl-legacy-provider", LAUNCHER, dir, bucket], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += String(d)));
  const requests: string[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`s3rver did not start within 15 s: ${stderr}`)), 15_000);
    child.once("exit", (code) => reject(new Error(`s3rver exited with code ${code}: ${stderr}`)));
    child.once("error", reject);
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (line.startsWith("REQ ")) requests.push(line.slice(4));
      else if (line.startsWith("{")) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      }
    });
  });
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    bucket,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
    requests,
    url: (prefix) => `s3://${bucket}/${prefix}?endpoint=${encodeURIComponent(endpoint)}&region=us-east-1&forcePathStyle=true`,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
