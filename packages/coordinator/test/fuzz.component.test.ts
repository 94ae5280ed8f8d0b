// Property-based fuzzing (fast-check) of the input path, issue #9: the line splitter and
// validator in this process for most cases (random bytes, mutated and truncated lines,
// random JSON, random chunking, invalid UTF-8, random sampling values), then a few
// thousand raw HTTP requests to a real coordinator on a real redis-server (random
// methods, paths, headers, framings, encodings, multipart forms, truncations and sizes).
// Asserted: nothing throws, every line gets a verdict that does not depend on chunking and
// never changes a byte, every accepted line is within the engine's limits, every HTTP
// request gets an answer that is not a 5xx (no faults are injected here), every error is
// OpenAI's JSON envelope, and nothing escapes to the process guard.
// Counts: LINE_RUNS + BODY_RUNS in-process, HTTP_RUNS over HTTP (>= 10,000 in all).
// A failure prints fast-check's seed; FUZZ_SEED=<seed> replays it.
import { isUtf8 } from "node:buffer";
import { BatchErrorCodes, inRange, parseBatchLine, REQUEST_LIMITS } from "@batchgen/core";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputValidator } from "../src/ingest/input-validator.js";
import { splitLines, type SplitLine } from "../src/ingest/split-lines.js";
import { multipart, rawRequest, requestHead } from "./support/raw-http.js";
import { chatLine, KEY_A, MODEL, startCluster, uploadFile, type Cluster } from "./support/harness.js";

const LINE_RUNS = 4_000;
const BODY_RUNS = 4_000;
const HTTP_RUNS = 2_500;
const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const params = (numRuns: number): fc.Parameters<unknown> => ({ numRuns, ...(seed === undefined ? {} : { seed }) });

const KNOWN_CODES = new Set<string>(Object.values(BatchErrorCodes));

// ---- generators

const oddValue = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(2 ** 31, -(2 ** 31) - 1, 2 ** 53, -1, 0, 1, 1.5, Number.MAX_VALUE),
  fc.string({ maxLength: 8 }),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
);
const SAMPLING_KEYS = ["top_k", "top_p", "min_p", "temperature", "priority", "max_tokens", "max_completion_tokens", "seed", "stop", "n", "ignore_eos"];
const bodyExtras = fc.dictionary(fc.constantFrom(...SAMPLING_KEYS), oddValue, { maxKeys: 4 });
const content = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 20 }), fc.string({ unit: "binary", maxLength: 20 }));

/** A request line that is valid or nearly so. */
const nearLine = fc
  .record({
    id: fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.string({ unit: "grapheme", minLength: 1, maxLength: 6 })),
    url: fc.constantFrom("/v1/chat/completions", "/v1/completions", "/v1/embeddings"),
    model: fc.constantFrom(MODEL, MODEL, "other"),
    content,
    extras: bodyExtras,
  })
  .map(({ id, url, model, content: c, extras }) =>
    JSON.stringify({
      custom_id: id,
      method: "POST",
      url,
      body: url === "/v1/completions" ? { model, prompt: c, ...extras } : { model, messages: [{ role: "user", content: c }], ...extras },
    }),
  );

/** Bytes of one line: near-valid, mutated, truncated, random JSON or random bytes. */
const lineBytes: fc.Arbitrary<Buffer> = fc.oneof(
  nearLine.map((t) => Buffer.from(t, "utf8")),
  fc.tuple(nearLine, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([t, at, byte]) => {
    const b = Buffer.from(t, "utf8");
    const i = at % (b.length + 1);
    return Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)]);
  }),
  fc.tuple(nearLine, fc.nat()).map(([t, at]) => {
    const b = Buffer.from(t, "utf8");
    return b.subarray(0, at % (b.length + 1));
  }),
  fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v) ?? "null", "utf8")),
  fc.uint8Array({ maxLength: 120 }).map((a) => Buffer.from(a)),
  fc.constantFrom(Buffer.from([0xc3, 0x28]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xef, 0xbb, 0xbf]), Buffer.alloc(0), Buffer.from(" \t")),
);

/** A whole file: lines with \n or \r\n, an optional BOM, in random chunks. */
const fileChunks = fc
  .record({
    lines: fc.array(fc.tuple(lineBytes, fc.constantFrom("\n", "\r\n")), { maxLength: 10 }),
    bom: fc.boolean(),
    trailing: fc.boolean(),
    cuts: fc.array(fc.nat(), { maxLength: 6 }),
  })
  .map(({ lines, bom, trailing, cuts }) => {
    const parts = lines.map(([b, sep], i) => (i < lines.length - 1 || trailing ? Buffer.concat([b, Buffer.from(sep)]) : b));
    const whole = Buffer.concat([bom ? Buffer.from([0xef, 0xbb, 0xbf]) : Buffer.alloc(0), ...parts]);
    const at = [...new Set(cuts.map((c) => c % (whole.length + 1)))].sort((a, b) => a - b);
    const chunks: Buffer[] = [];
    let prev = 0;
    for (const c of [...at, whole.length]) {
      chunks.push(whole.subarray(prev, c));
      prev = c;
    }
    return { whole, chunks };
  });

async function collect(chunks: Buffer[], max: number): Promise<SplitLine[]> {
  const out: SplitLine[] = [];
  async function* src(): AsyncGenerator<Buffer> {
    yield* chunks;
  }
  for await (const l of splitLines(src(), max)) out.push(l);
  return out;
}

/** What splitLines must give, computed the obvious way from the whole file. */
function expectedLines(whole: Buffer, max: number): Array<{ text: string | null; invalidUtf8: boolean; start: number; end: number }> {
  let pos = whole.subarray(0, 3).equals(Buffer.from([0xef, 0xbb, 0xbf])) ? 3 : 0;
  const out = [];
  while (pos < whole.length) {
    const nl = whole.indexOf(0x0a, pos);
    const end = nl < 0 ? whole.length : nl + 1;
    let line = whole.subarray(pos, nl < 0 ? whole.length : nl);
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    const tooLong = line.length > max;
    const valid = isUtf8(line);
    out.push({ text: tooLong || !valid ? null : line.toString("utf8"), invalidUtf8: !tooLong && !valid, start: pos, end });
    pos = end;
  }
  return out;
}

function checkAccepted(text: string): void {
  const r = parseBatchLine(text, 1);
  if (!r.ok) {
    expect(KNOWN_CODES.has(r.code) || r.code === "invalid_request", r.code).toBe(true);
    return;
  }
  const q = r.request;
  expect(inRange(q.topK, REQUEST_LIMITS.top_k)).toBe(true);
  expect(inRange(q.priority, REQUEST_LIMITS.priority)).toBe(true);
  expect(inRange(q.temperature, REQUEST_LIMITS.temperature)).toBe(true);
  expect(inRange(q.topP, REQUEST_LIMITS.top_p)).toBe(true);
  expect(inRange(q.minP, REQUEST_LIMITS.min_p)).toBe(true);
  if (q.maxTokens !== null) expect(inRange(q.maxTokens, REQUEST_LIMITS.max_tokens)).toBe(true);
}

describe("line parser (in process)", () => {
  it(`gives every line of ${BODY_RUNS} random files a verdict independent of chunking, never altering a byte`, async () => {
    await fc.assert(
      fc.asyncProperty(fileChunks, fc.integer({ min: 16, max: 400 }), fc.integer({ min: 1, max: 4 }), async ({ whole, chunks }, max, shardLines) => {
        const got = await collect(chunks, max);
        const want = expectedLines(whole, max);
        expect(got.map((l) => ({ text: l.text, invalidUtf8: l.invalidUtf8 ?? false, start: l.start, end: l.end }))).toEqual(want);
        const v = new InputValidator({
          endpoint: "/v1/chat/completions",
          shardLines,
          maxLineBytes: max,
          maxReportedErrors: 1000,
          lookupModel: (m) => (m === MODEL ? { maxModelLen: 0 } : null),
        });
        for (const l of got) v.add(l);
        const r = v.finish();
        for (const e of r.errors) expect(KNOWN_CODES.has(e.code), e.code).toBe(true);
        const requestLines = got.filter((l) => l.text === null || l.text.trim() !== "");
        expect(r.total).toBe(requestLines.length);
        if (r.errors.length === 0) {
          // Shards cover the request lines in order: each byte range holds exactly its lines
          // (a blank line between two shards may fall in neither).
          expect(r.shards.reduce((n, s) => n + s.lineCount, 0)).toBe(r.total);
          for (let i = 1; i < r.shards.length; i++) expect(r.shards[i]!.byteStart).toBeGreaterThanOrEqual(r.shards[i - 1]!.byteEnd);
          for (const s of r.shards) {
            const inside = requestLines.filter((l) => l.start >= s.byteStart && l.end <= s.byteEnd);
            expect(inside.length).toBe(s.lineCount);
          }
        } else {
          expect(r.shards).toEqual([]);
        }
        for (const l of got) if (l.text !== null && l.text.trim() !== "") checkAccepted(l.text);
      }),
      params(BODY_RUNS),
    );
  });

  it(`parses ${LINE_RUNS} random lines without throwing; what it accepts is within the engine's limits`, () => {
    fc.assert(
      fc.property(fc.oneof(nearLine, fc.string(), fc.string({ unit: "grapheme" }), fc.jsonValue().map((v) => JSON.stringify(v) ?? "")), (text) => {
        checkAccepted(text);
      }),
      params(LINE_RUNS),
    );
  });
});

// ---- HTTP

let cluster: Cluster;
let port: number;
let fileId = "file_000000000000aaaaaaaaaaaaaaaaaaaa";

beforeAll(async () => {
  cluster = await startCluster({ idleTimeoutMs: 250, requestTimeoutMs: 2_000, maxFileBytes: 256 * 1024, models: [MODEL] });
  port = cluster.replicas[0]!.httpPort;
  const up = await uploadFile(cluster.url(), chatLine("seed") + "\n");
  fileId = up.body.id;
});

afterAll(async () => {
  await cluster?.stop();
});

const boundaryArb = fc.oneof(fc.constant("B0undary"), fc.stringMatching(/^[A-Za-z0-9'()+_,./:=?-]{1,70}$/));
const partArb = fc.record({
  name: fc.oneof(fc.constantFrom("file", "purpose", "expires_after[anchor]", "expires_after[seconds]"), fc.string({ maxLength: 10 })),
  filename: fc.option(
    fc.oneof(
      fc.string({ maxLength: 12 }).map((s) => `filename="${s.replace(/["\r\n]/g, "")}"`),
      fc.string({ unit: "grapheme", maxLength: 8 }).map((s) => `filename*=UTF-8''${encodeURIComponent(s)}`),
      fc.constantFrom('filename="naïve.jsonl"', "filename*=UTF-8''%FF%FE", "filename*=bogus", 'filename=""'),
    ),
    { nil: undefined },
  ),
  body: fc.oneof(
    fc.constantFrom("batch", "fine-tune", "created_at", "3600", "60", ""),
    fc.array(lineBytes, { maxLength: 5 }).map((ls) => Buffer.concat(ls.flatMap((l) => [l, Buffer.from("\n")]))),
    fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
  ),
});
const formArb = fc.record({ boundary: boundaryArb, parts: fc.array(partArb, { maxLength: 5 }), cut: fc.option(fc.nat(), { nil: undefined }) }).map(({ boundary, parts, cut }) => {
  const body = multipart(
    boundary,
    parts.map((p) => ({ disposition: `form-data; name="${p.name.replace(/["\r\n]/g, "")}"${p.filename ? `; ${p.filename}` : ""}`, body: p.body })),
  );
  return { boundary, body: cut === undefined ? body : body.subarray(0, cut % (body.length + 1)) };
});

const pathArb = fc.oneof(
  fc.constantFrom("/v1/files", "/v1/batches", "/healthz", "/metrics", "/v1/files?purpose=batch&limit=2&order=asc", "/v1/batches?limit=0"),
  fc.constantFrom("FILE", "FILE/content", "nope").map((p) => `/v1/files/${p.replace("FILE", fileId)}`),
  fc.constantFrom("/v1/batches/batch_000000000000aaaaaaaaaaaaaaaaaaaa", "/v1/batches/x/cancel", "/v1/../v1/files", "//v1//files//"),
  fc.string({ maxLength: 20 }).map((s) => `/v1/${encodeURIComponent(s)}`),
  fc.tuple(fc.constantFrom("/v1/files?", "/v1/batches?"), fc.string({ maxLength: 30 })).map(([p, q]) => p + encodeURIComponent(q).replace(/%3D/g, "=").replace(/%26/g, "&")),
);

const jsonBodyArb = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? ""),
  fc
    .record({
      input_file_id: fc.oneof(fc.constant("FILE"), fc.string({ maxLength: 10 })),
      endpoint: fc.constantFrom("/v1/chat/completions", "/v1/completions", "/v1/x"),
      completion_window: fc.constantFrom("24h", "1h", "5m"),
      metadata: fc.option(fc.dictionary(fc.string({ maxLength: 70 }), fc.oneof(fc.string({ maxLength: 5 }), fc.integer())), { nil: undefined }),
      priority: fc.option(oddValue, { nil: undefined }),
      output_expires_after: fc.option(fc.record({ anchor: fc.constantFrom("created_at", "x"), seconds: oddValue }), { nil: undefined }),
    })
    .map((b) => JSON.stringify(b).replace('"FILE"', JSON.stringify(fileId))),
);

const requestArb = fc.record({
  method: fc.constantFrom("GET", "POST", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"),
  path: pathArb,
  auth: fc.constantFrom(`Bearer ${KEY_A}`, `Bearer ${KEY_A}`, "Bearer sk-wrong", "Basic abc", undefined),
  kind: fc.constantFrom("form", "form", "json", "bytes", "none", "big"),
  // Sizes around the 256 KiB file limit of this cluster.
  bigSize: fc.integer({ min: 1_000, max: 400_000 }),
  contentType: fc.constantFrom("right", "right", "multipart-no-boundary", "json", "text", "garbage", "none"),
  framing: fc.constantFrom("length", "length", "length", "short-length", "chunked", "bad-chunked", "long-length", "huge-length"),
  form: formArb,
  json: jsonBodyArb,
  bytes: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  extraHeader: fc.option(
    fc.oneof(
      fc.tuple(fc.stringMatching(/^[a-z-]{1,12}$/), fc.string({ unit: "binary-ascii", maxLength: 20 })),
      fc.constantFrom<[string, string]>(
        ["content-encoding", "gzip"],
        ["content-encoding", "br, identity"],
        ["expect", "100-continue"],
        ["content-type", "multipart/mixed; boundary=B0undary"],
        ["accept-charset", "iso-8859-1"],
        ["x-forwarded-for", "::1"],
      ),
    ),
    { nil: undefined },
  ),
});

function encode(r: typeof requestArb extends fc.Arbitrary<infer T> ? T : never): Buffer {
  const bodies: Record<string, () => Buffer> = {
    form: () => r.form.body,
    json: () => Buffer.from(r.json),
    bytes: () => r.bytes,
    none: () => Buffer.alloc(0),
    big: () => {
      const line = chatLine("big") + "\n";
      const content = line.repeat(Math.ceil(r.bigSize / line.length)).slice(0, r.bigSize);
      return multipart(r.form.boundary, [
        { disposition: 'form-data; name="purpose"', body: "batch" },
        { disposition: 'form-data; name="file"; filename="big.jsonl"', body: content },
      ]);
    },
  };
  const body = bodies[r.kind]!();
  const headers: Record<string, string | number> = { connection: "close" };
  if (r.auth) headers.authorization = r.auth;
  const types: Record<string, string | undefined> = {
    right: r.kind === "form" || r.kind === "big" ? `multipart/form-data; boundary=${r.form.boundary}` : "application/json",
    "multipart-no-boundary": "multipart/form-data",
    json: "application/json",
    text: "text/plain; charset=latin1",
    garbage: "multipart/form-data; boundary=",
    none: undefined,
  };
  if (types[r.contentType]) headers["content-type"] = types[r.contentType]!;
  if (r.extraHeader) headers[r.extraHeader[0]] = r.extraHeader[1].replace(/[\r\n]/g, "");
  let payload = body;
  if (r.framing === "chunked" || r.framing === "bad-chunked") {
    headers["transfer-encoding"] = "chunked";
    const half = Math.floor(body.length / 2);
    const chunk = (b: Buffer): Buffer => (b.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from("\r\n")]));
    payload = Buffer.concat([chunk(body.subarray(0, half)), chunk(body.subarray(half)), Buffer.from(r.framing === "chunked" ? "0\r\n\r\n" : "zz\r\n")]);
  } else if (r.framing === "short-length") {
    headers["content-length"] = Math.floor(body.length / 2);
  } else if (r.framing === "huge-length") {
    // A declared size past every limit: 413 before a byte is read (routes without a body included).
    headers["content-length"] = 10 * 1024 ** 3;
  } else if (r.framing === "long-length") {
    // Declares more than it sends: answered by the idle timeout (408) or, past the limit, at once (413).
    headers["content-length"] = body.length + 10;
  } else {
    headers["content-length"] = body.length;
  }
  return Buffer.concat([requestHead(r.method, r.path, headers), payload]);
}

describe("HTTP API (real coordinator, real Redis)", () => {
  it(`answers ${HTTP_RUNS} random requests without a 5xx, always in JSON errors, and keeps serving`, async () => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(requestArb, async (r) => {
        const res = await rawRequest(port, encode(r), 5_000);
        expect(res, "an answer").not.toBeNull();
        statuses.set(res!.status, (statuses.get(res!.status) ?? 0) + 1);
        expect(res!.status, `${r.method} ${r.path}: ${res!.body.slice(0, 200)}`).toBeLessThan(500);
        if (res!.status >= 400) {
          const body = JSON.parse(res!.body);
          expect(Object.keys(body)).toEqual(["error"]);
          expect(typeof body.error.message).toBe("string");
          expect(body.error.message).not.toMatch(/\n\s+at /);
        }
      }),
      params(HTTP_RUNS),
    );
    // The generators reach both sides of the API.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(20);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(100);
    const health = await fetch(`${cluster.url()}/healthz`);
    expect(health.status).toBe(200);
    const metrics = await (await fetch(`${cluster.url()}/metrics`)).text();
    expect(metrics).not.toMatch(/batchgen_coordinator_uncaught_errors_total\{[^}]*\} [1-9]/);
  }, 600_000);
});
