// HTTP at the byte level for tests that send what no well-behaved client would: a body
// cut short, a Content-Length that lies, a connection dropped mid-upload. Plus counters of
// this process's open files and a store's temp files, for leak checks.
import { readdirSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Milliseconds from the first byte sent to the response's end. */
  ms: number;
}

/** The head of a request: request line and headers (lower-case names), CRLF-terminated. */
export function requestHead(method: string, path: string, headers: Record<string, string | number>): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`, "host: 127.0.0.1", ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  return Buffer.from(lines.join("\r\n") + "\r\n\r\n", "latin1");
}

function parseResponse(raw: Buffer, startedMs: number): RawResponse | null {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const head = raw.subarray(0, end).toString("latin1").split("\r\n");
  const status = Number(head[0]!.split(" ")[1]);
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(":");
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const body = raw.subarray(end + 4);
  const length = headers["content-length"] === undefined ? null : Number(headers["content-length"]);
  if (length !== null && body.length < length) return null;
  return { status, headers, body: body.subarray(0, length ?? body.length).toString("utf8"), ms: Date.now() - startedMs };
}

/**
 * Send `bytes` on a fresh connection (then keep it open, sending nothing more) and wait for
 * the response; resolves null if the server closes the connection without one.
 */
export function rawRequest(port: number, bytes: Buffer, timeoutMs = 10_000): Promise<RawResponse | null> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket: Socket = connect(port, "127.0.0.1");
    let raw = Buffer.alloc(0);
    let done = false;
    const finish = (r: RawResponse | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      socket.destroy();
      reject(new Error(`no response within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on("data", (chunk: Buffer) => {
      raw = Buffer.concat([raw, chunk]);
      const r = parseResponse(raw, started);
      if (r) finish(r);
    });
    socket.on("error", () => finish(parseResponse(raw, started)));
    socket.on("close", () => finish(parseResponse(raw, started)));
    socket.write(bytes);
  });
}

/** Send `bytes` and drop the connection at once, as a client that dies mid-upload. */
export function abortedRequest(port: number, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.write(bytes, () => {
        // Give the server a moment to start reading, then vanish.
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 2);
      });
    });
    socket.on("error", () => resolve());
  });
}

/** A multipart/form-data body with the given parts (raw header text per part). */
export function multipart(boundary: string, parts: Array<{ disposition: string; body: string | Buffer; type?: string }>): Buffer {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Disposition: ${p.disposition}\r\n`;
    if (p.type) head += `Content-Type: ${p.type}\r\n`;
    chunks.push(Buffer.from(head + "\r\n", "utf8"), Buffer.isBuffer(p.body) ? p.body : Buffer.from(p.body, "utf8"), Buffer.from("\r\n"));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

/** Open file descriptors of this process (Linux). */
export function openFds(): number {
  return readdirSync("/proc/self/fd").length;
}

/** Temp files a filesystem store holds under <root>/.batchgen-tmp. */
export function tempFiles(storeRoot: string): string[] {
  try {
    return readdirSync(join(storeRoot, ".batchgen-tmp"));
  } catch {
    return [];
  }
}
