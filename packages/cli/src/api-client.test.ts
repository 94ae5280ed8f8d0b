// The client's error mapping and upload, against a scripted HTTP server on loopback.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiClient } from "./api-client.js";
import { CliError } from "./cli-error.js";
import { freePort } from "./free-port.js";

let server: Server;
let base: string;
let handler: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void = () => {};

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handler(req, res, Buffer.concat(chunks)));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));

describe("ApiClient", () => {
  it("sends the API key and reads batches", async () => {
    let auth: string | undefined;
    handler = (req, res) => {
      auth = req.headers.authorization;
      json(res, 200, { id: "batch_9", status: "completed", request_counts: { total: 1, completed: 1, failed: 0 } });
    };
    const b = await new ApiClient({ baseUrl: `${base}/v1/`, apiKey: "sk-1" }).getBatch("batch_9");
    expect(auth).toBe("Bearer sk-1");
    expect(b.id).toBe("batch_9");
  });

  it("uploads a file as multipart with purpose=batch", async () => {
    const dir = await mkdtemp(join(tmpdir(), "bg-up-"));
    const path = join(dir, "in.jsonl");
    await writeFile(path, '{"custom_id":"x"}\n');
    let received = "";
    handler = (req, res, body) => {
      received = `${req.method} ${req.url} ${req.headers["content-type"]}\n${body.toString()}`;
      json(res, 200, { id: "file_1", object: "file", bytes: 18 });
    };
    try {
      const f = await new ApiClient({ baseUrl: base }).uploadFile(path);
      expect(f.id).toBe("file_1");
      expect(received).toMatch(/^POST \/v1\/files multipart\/form-data; boundary=/);
      expect(received).toMatch(/name="purpose"\r\n\r\nbatch\r\n/);
      expect(received).toMatch(/name="file"; filename="in.jsonl"/);
      expect(received).toContain('{"custom_id":"x"}\n');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("turns 401, 404 and other failures into one-line messages", async () => {
    const client = new ApiClient({ baseUrl: base, apiKey: "bad" });
    handler = (_q, res) => json(res, 401, { error: { message: "Incorrect API key provided.", type: "invalid_request_error", param: null, code: "invalid_api_key" } });
    await expect(client.listBatches()).rejects.toThrow("the coordinator refused the API key (401: Incorrect API key provided.). Pass --api-key or set BATCHGEN_API_KEY.");
    handler = (_q, res) => json(res, 404, { error: { message: "No batch found with id 'batch_x'.", type: "invalid_request_error", param: "id", code: null } });
    await expect(client.getBatch("batch_x")).rejects.toThrow(new CliError("No batch found with id 'batch_x'."));
    handler = (_q, res) => res.writeHead(502).end("bad gateway");
    await expect(client.cancelBatch("batch_x")).rejects.toThrow("POST /v1/batches/batch_x/cancel failed (502): bad gateway");
    handler = (_q, res) => res.writeHead(200).end("<html>");
    await expect(client.getBatch("b")).rejects.toThrow(/is not JSON; is that a batchgen coordinator\?/);
  });

  it("says when nothing listens at the address", async () => {
    const port = await freePort();
    const err = await new ApiClient({ baseUrl: `http://127.0.0.1:${port}` }).listBatches().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as Error).message).toBe(`cannot reach the coordinator at http://127.0.0.1:${port} (ECONNREFUSED). Is it running (\`batchgen up\`)? Pass --url or set BATCHGEN_URL.`);
  });
});
