import { describe, expect, it } from "vitest";
import {
  BatchgenError,
  ERROR_CODES,
  GrpcStatus,
  errorCodeFromGrpc,
  grpcStatusOf,
  httpStatusOf,
  isBatchgenError,
  toBatchgenError,
  toOpenAIErrorBody,
  type ErrorCode,
} from "./errors.js";

describe("BatchgenError", () => {
  it("carries code, message, param, reason and cause", () => {
    const cause = new Error("low level");
    const e = new BatchgenError("invalid_request", "bad model", { param: "model", reason: "model_not_found", cause });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("BatchgenError");
    expect(e.code).toBe("invalid_request");
    expect(e.message).toBe("bad model");
    expect(e.param).toBe("model");
    expect(e.reason).toBe("model_not_found");
    expect(e.cause).toBe(cause);
    expect(new BatchgenError("internal", "x").param).toBeUndefined();
  });

  it("isBatchgenError recognises a look-alike from another copy of the package", () => {
    const foreign = Object.assign(new Error("gone"), { name: "BatchgenError", code: "not_found" });
    expect(isBatchgenError(foreign)).toBe(true);
    expect(isBatchgenError(Object.assign(new Error("x"), { name: "BatchgenError", code: "nonsense" }))).toBe(false);
    expect(isBatchgenError(new Error("plain"))).toBe(false);
    expect(isBatchgenError("string")).toBe(false);
    expect(isBatchgenError(null)).toBe(false);
  });

  it("toBatchgenError keeps BatchgenErrors and wraps anything else as internal", () => {
    const e = new BatchgenError("conflict", "dup");
    expect(toBatchgenError(e)).toBe(e);
    const wrapped = toBatchgenError(new TypeError("x is undefined"));
    expect(wrapped.code).toBe("internal");
    expect(wrapped.message).toBe("internal server error");
    expect(wrapped.cause).toBeInstanceOf(TypeError);
  });
});

describe("status mappings", () => {
  const http: Record<ErrorCode, number> = {
    invalid_request: 400,
    unauthenticated: 401,
    permission_denied: 403,
    not_found: 404,
    conflict: 409,
    failed_precondition: 412,
    resource_exhausted: 429,
    unavailable: 503,
    insufficient_storage: 507,
    cancelled: 499,
    deadline_exceeded: 504,
    payload_too_large: 413,
    request_timeout: 408,
    method_not_allowed: 405,
    internal: 500,
  };
  const grpc: Record<ErrorCode, number> = {
    invalid_request: 3,
    unauthenticated: 16,
    permission_denied: 7,
    not_found: 5,
    conflict: 6,
    failed_precondition: 9,
    resource_exhausted: 8,
    unavailable: 14,
    insufficient_storage: 8,
    cancelled: 1,
    deadline_exceeded: 4,
    payload_too_large: 8,
    request_timeout: 4,
    method_not_allowed: 12,
    internal: 13,
  };
  // HTTP-only codes (and a full store) share the gRPC status of a nearer code and come back as that one.
  const back: Partial<Record<ErrorCode, ErrorCode>> = {
    payload_too_large: "resource_exhausted",
    request_timeout: "deadline_exceeded",
    method_not_allowed: "internal",
    // A full store has no gRPC status of its own: it travels as RESOURCE_EXHAUSTED.
    insufficient_storage: "resource_exhausted",
  };

  it.each(ERROR_CODES)("%s maps to its HTTP and gRPC status and back", (code) => {
    expect(httpStatusOf(code)).toBe(http[code]);
    expect(grpcStatusOf(code)).toBe(grpc[code]);
    expect(errorCodeFromGrpc(grpcStatusOf(code))).toBe(back[code] ?? code);
  });

  it("gRPC statuses with no code of their own map to the nearest one", () => {
    expect(errorCodeFromGrpc(GrpcStatus.UNKNOWN)).toBe("internal");
    expect(errorCodeFromGrpc(GrpcStatus.UNIMPLEMENTED)).toBe("internal");
    expect(errorCodeFromGrpc(GrpcStatus.DATA_LOSS)).toBe("internal");
    expect(errorCodeFromGrpc(GrpcStatus.ABORTED)).toBe("conflict");
    expect(errorCodeFromGrpc(GrpcStatus.OUT_OF_RANGE)).toBe("invalid_request");
    expect(errorCodeFromGrpc(999)).toBe("internal");
  });
});

describe("toOpenAIErrorBody", () => {
  it("gives OpenAI's envelope with type, param and code", () => {
    expect(toOpenAIErrorBody(new BatchgenError("not_found", "No batch found with id 'batch_x'."))).toEqual({
      error: { message: "No batch found with id 'batch_x'.", type: "invalid_request_error", param: null, code: "not_found" },
    });
    expect(
      toOpenAIErrorBody(new BatchgenError("unauthenticated", "Incorrect API key provided.", { reason: "invalid_api_key" })),
    ).toEqual({ error: { message: "Incorrect API key provided.", type: "authentication_error", param: null, code: "invalid_api_key" } });
    expect(toOpenAIErrorBody(new BatchgenError("invalid_request", "bad", { param: "purpose" })).error.param).toBe("purpose");
    expect(toOpenAIErrorBody(new BatchgenError("resource_exhausted", "slow down")).error.type).toBe("rate_limit_error");
    expect(toOpenAIErrorBody(new BatchgenError("unavailable", "later")).error.type).toBe("server_error");
  });

  it("never leaks the message, stack or cause of an unexpected error", () => {
    const secret = new Error("ECONNREFUSED redis://:hunter2@10.0.0.5:6379");
    const body = toOpenAIErrorBody(secret);
    expect(body).toEqual({ error: { message: "internal server error", type: "server_error", param: null, code: "internal" } });
    expect(JSON.stringify(body)).not.toContain("hunter2");
    const wrapped = new BatchgenError("internal", "could not save results", { cause: secret });
    const text = JSON.stringify(toOpenAIErrorBody(wrapped));
    expect(text).not.toContain("hunter2");
    expect(text).not.toContain("at ");
    expect(toOpenAIErrorBody("thrown string").error.code).toBe("internal");
    expect(toOpenAIErrorBody(undefined).error.code).toBe("internal");
  });
});
