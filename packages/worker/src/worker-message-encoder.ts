// The worker's serializer for WorkerMessage: Result messages (one per line, the hot
// path) are written straight into one Buffer; every other message goes through
// protobuf-es toBinary. The bytes are exactly toBinary's (fields in number order,
// proto3 defaults left out, unknown fields none), which worker-message-encoder.test.ts
// checks against toBinary.
import { toBinary } from "@bufbuild/protobuf";
import { WorkerMessageSchema, type Result, type WorkerMessage } from "@batchgen/proto";

// Tags: field number << 3 | wire type (0 varint, 1 fixed64, 2 length-delimited).
const TAG_WORKER_RESULT = (3 << 3) | 2;
const TAG_LEASE_ID = (1 << 3) | 2;
const TAG_BATCH_ID = (2 << 3) | 2;
const TAG_LINE_INDEX = 3 << 3;
const TAG_CUSTOM_ID = (4 << 3) | 2;
const TAG_RESPONSE = (5 << 3) | 2;
const TAG_ERROR = (6 << 3) | 2;
const TAG_USAGE = (7 << 3) | 2;
const TAG_ENGINE_MS = (8 << 3) | 1;
const TAG_SUB_1_VARINT = 1 << 3;
const TAG_SUB_1_STRING = (1 << 3) | 2;
const TAG_SUB_2_VARINT = 2 << 3;
const TAG_SUB_2_STRING = (2 << 3) | 2;
const TAG_SUB_3_VARINT = 3 << 3;

export function encodeWorkerMessage(m: WorkerMessage): Buffer {
  if (m.msg.case === "result" && m.$unknown === undefined) return encodeResultMessage(m.msg.value);
  return Buffer.from(toBinary(WorkerMessageSchema, m));
}

function varintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function bigVarintSize(v: bigint): number {
  let n = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    n++;
  }
  return n;
}

/** Size of a length-delimited field (tag, length, bytes), 0 for an empty string (left out). */
function stringFieldSize(bytes: number): number {
  return bytes === 0 ? 0 : 1 + varintSize(bytes) + bytes;
}

function encodeResultMessage(r: Result): Buffer {
  if (r.$unknown !== undefined || r.usage?.$unknown !== undefined || r.outcome.value?.$unknown !== undefined) {
    return Buffer.from(toBinary(WorkerMessageSchema, { $typeName: "batchgen.v1.WorkerMessage", msg: { case: "result", value: r } }));
  }
  const leaseBytes = Buffer.byteLength(r.leaseId);
  const batchBytes = Buffer.byteLength(r.batchId);
  const customBytes = Buffer.byteLength(r.customId);
  const lineIndex = BigInt.asUintN(64, r.lineIndex);
  let size = stringFieldSize(leaseBytes) + stringFieldSize(batchBytes) + stringFieldSize(customBytes);
  if (lineIndex !== 0n) size += 1 + bigVarintSize(lineIndex);

  // The outcome: Response { status_code = 1; body_json = 2 } or LineError { code = 1; message = 2 }.
  const o = r.outcome;
  let outcomeTag = 0;
  let first = 0; // status_code
  let firstText = ""; // code
  let second = ""; // body_json / message
  let firstBytes = 0;
  let secondBytes = 0;
  let outcomeSize = 0;
  if (o.case === "response") {
    outcomeTag = TAG_RESPONSE;
    first = o.value.statusCode >>> 0;
    second = o.value.bodyJson;
    secondBytes = Buffer.byteLength(second);
    outcomeSize = (first !== 0 ? 1 + varintSize(first) : 0) + stringFieldSize(secondBytes);
  } else if (o.case === "error") {
    outcomeTag = TAG_ERROR;
    firstText = o.value.code;
    firstBytes = Buffer.byteLength(firstText);
    second = o.value.message;
    secondBytes = Buffer.byteLength(second);
    outcomeSize = stringFieldSize(firstBytes) + stringFieldSize(secondBytes);
  }
  if (outcomeTag !== 0) size += 1 + varintSize(outcomeSize) + outcomeSize;

  const u = r.usage;
  const prompt = u ? u.promptTokens >>> 0 : 0;
  const completion = u ? u.completionTokens >>> 0 : 0;
  const cached = u ? u.cachedTokens >>> 0 : 0;
  const usageSize = u
    ? (prompt !== 0 ? 1 + varintSize(prompt) : 0) + (completion !== 0 ? 1 + varintSize(completion) : 0) + (cached !== 0 ? 1 + varintSize(cached) : 0)
    : 0;
  if (u) size += 1 + varintSize(usageSize) + usageSize;
  if (r.engineMs !== 0) size += 9;

  const buf = Buffer.allocUnsafe(1 + varintSize(size) + size);
  let pos = 0;
  const varint = (v: number) => {
    while (v >= 0x80) {
      buf[pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    buf[pos++] = v;
  };
  const string = (tag: number, s: string, bytes: number) => {
    if (bytes === 0) return;
    buf[pos++] = tag;
    varint(bytes);
    pos += buf.write(s, pos, bytes, "utf8");
  };
  buf[pos++] = TAG_WORKER_RESULT;
  varint(size);
  string(TAG_LEASE_ID, r.leaseId, leaseBytes);
  string(TAG_BATCH_ID, r.batchId, batchBytes);
  if (lineIndex !== 0n) {
    buf[pos++] = TAG_LINE_INDEX;
    let v = lineIndex;
    while (v >= 0x80n) {
      buf[pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    buf[pos++] = Number(v);
  }
  string(TAG_CUSTOM_ID, r.customId, customBytes);
  if (outcomeTag !== 0) {
    buf[pos++] = outcomeTag;
    varint(outcomeSize);
    if (outcomeTag === TAG_RESPONSE) {
      if (first !== 0) {
        buf[pos++] = TAG_SUB_1_VARINT;
        varint(first);
      }
    } else string(TAG_SUB_1_STRING, firstText, firstBytes);
    string(TAG_SUB_2_STRING, second, secondBytes);
  }
  if (u) {
    buf[pos++] = TAG_USAGE;
    varint(usageSize);
    if (prompt !== 0) {
      buf[pos++] = TAG_SUB_1_VARINT;
      varint(prompt);
    }
    if (completion !== 0) {
      buf[pos++] = TAG_SUB_2_VARINT;
      varint(completion);
    }
    if (cached !== 0) {
      buf[pos++] = TAG_SUB_3_VARINT;
      varint(cached);
    }
  }
  if (r.engineMs !== 0) {
    buf[pos++] = TAG_ENGINE_MS;
    pos = buf.writeDoubleLE(r.engineMs, pos);
  }
  if (pos !== buf.length) throw new Error(`Result encoding wrote ${pos} of ${buf.length} bytes`);
  return buf;
}
