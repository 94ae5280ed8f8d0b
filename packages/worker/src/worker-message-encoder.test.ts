import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { WorkerMessageSchema } from "@batchgen/proto";
import { describe, expect, it } from "vitest";
import { encodeWorkerMessage } from "./worker-message-encoder.js";

type Init = MessageInitShape<typeof WorkerMessageSchema>["msg"];

function same(msg: Init): void {
  const m = create(WorkerMessageSchema, { msg });
  const ours = encodeWorkerMessage(m);
  expect(Buffer.from(ours).toString("hex")).toBe(Buffer.from(toBinary(WorkerMessageSchema, m)).toString("hex"));
  expect(fromBinary(WorkerMessageSchema, ours)).toEqual(m);
}

describe("encodeWorkerMessage", () => {
  it("writes a response Result byte for byte as toBinary does", () => {
    same({
      case: "result",
      value: {
        leaseId: "lease_0123",
        batchId: "batch_abc",
        lineIndex: 123_456_789n,
        customId: "r-1",
        outcome: { case: "response", value: { statusCode: 200, bodyJson: '{"a":"é ✓ 😀"}' } },
        usage: { promptTokens: 300, completionTokens: 8, cachedTokens: 256 },
        engineMs: 1.25,
      },
    });
  });

  it("writes error Results, defaults left out, large and zero values", () => {
    same({
      case: "result",
      value: { leaseId: "l", batchId: "b", lineIndex: 0n, customId: "", outcome: { case: "error", value: { code: "invalid_request", message: "x".repeat(300) } }, usage: { promptTokens: 0, completionTokens: 0 } },
    });
    same({ case: "result", value: { leaseId: "l".repeat(200), lineIndex: 2n ** 63n + 5n, outcome: { case: "response", value: { statusCode: 0, bodyJson: "" } }, engineMs: 0 } });
    same({ case: "result", value: { leaseId: "l", customId: "ü".repeat(100_000), outcome: { case: "error", value: {} }, usage: { promptTokens: 4_294_967_295, completionTokens: 128, cachedTokens: 4_294_967_295 } } });
    same({ case: "result", value: {} });
  });

  it("hands every other message to toBinary", () => {
    same({ case: "credit", value: { requests: 2048 } });
    same({ case: "leaseDone", value: { leaseId: "lease_1" } });
    same({ case: "release", value: { leaseId: "lease_1", doneLineIndexes: [1n, 2n, 300n] } });
  });
});
