// One error vocabulary across the wire: a closed set of codes, each mapped once to an
// HTTP status and a gRPC status. User-facing messages are written for users; anything
// that is not a BatchgenError is reported as a generic "internal" error so no stack or
// driver detail ever reaches a client.

export type ErrorCode =
  | "invalid_request"
  | "unauthenticated"
  | "permission_denied"
  | "not_found"
  | "conflict"
  | "failed_precondition"
  | "resource_exhausted"
  | "unavailable"
  | "insufficient_storage"
  | "cancelled"
  | "deadline_exceeded"
  // HTTP-only (no gRPC status of their own): 413, 408, 405.
  | "payload_too_large"
  | "request_timeout"
  | "method_not_allowed"
  | "internal";

export const ERROR_CODES: readonly ErrorCode[] = [
  "invalid_request",
  "unauthenticated",
  "permission_denied",
  "not_found",
  "conflict",
  "failed_precondition",
  "resource_exhausted",
  "unavailable",
  "insufficient_storage",
  "cancelled",
  "deadline_exceeded",
  "payload_too_large",
  "request_timeout",
  "method_not_allowed",
  "internal",
];

export interface BatchgenErrorOptions {
  cause?: unknown;
  /** The request field at fault (OpenAI's `param`), e.g. "messages[0].content". */
  param?: string;
  /** A finer, OpenAI-style code, e.g. "missing_required_parameter" or "invalid_api_key". */
  reason?: string;
}

export class BatchgenError extends Error {
  override readonly name = "BatchgenError";
  readonly code: ErrorCode;
  readonly param?: string;
  readonly reason?: string;

  constructor(code: ErrorCode, message: string, options: BatchgenErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    if (options.param !== undefined) this.param = options.param;
    if (options.reason !== undefined) this.reason = options.reason;
  }
}

/** True for a BatchgenError, also one created by another copy of this package. */
export function isBatchgenError(err: unknown): err is BatchgenError {
  if (err instanceof BatchgenError) return true;
  if (typeof err !== "object" || err === null) return false;
  const e = err as { name?: unknown; code?: unknown; message?: unknown };
  return (
    e.name === "BatchgenError" &&
    typeof e.message === "string" &&
    (ERROR_CODES as readonly unknown[]).includes(e.code)
  );
}

/** The error as a BatchgenError: itself, or "internal" with a generic message wrapping it. */
export function toBatchgenError(err: unknown): BatchgenError {
  if (isBatchgenError(err)) return err;
  return new BatchgenError("internal", "internal server error", { cause: err });
}

const HTTP_STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  conflict: 409,
  failed_precondition: 412,
  resource_exhausted: 429,
  unavailable: 503,
  // The object store is full (ENOSPC, S3 EntityTooLarge / quota): WebDAV's 507.
  insufficient_storage: 507,
  // 499 "client closed request" (nginx, Connect): the caller gave up or cancelled.
  cancelled: 499,
  deadline_exceeded: 504,
  payload_too_large: 413,
  // The client sent its request too slowly (idle or past the request deadline).
  request_timeout: 408,
  method_not_allowed: 405,
  internal: 500,
};

// Numbers of @grpc/grpc-js `status`, so this module needs no gRPC import.
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

const GRPC_STATUS: Record<ErrorCode, number> = {
  invalid_request: GrpcStatus.INVALID_ARGUMENT,
  unauthenticated: GrpcStatus.UNAUTHENTICATED,
  permission_denied: GrpcStatus.PERMISSION_DENIED,
  not_found: GrpcStatus.NOT_FOUND,
  conflict: GrpcStatus.ALREADY_EXISTS,
  failed_precondition: GrpcStatus.FAILED_PRECONDITION,
  resource_exhausted: GrpcStatus.RESOURCE_EXHAUSTED,
  unavailable: GrpcStatus.UNAVAILABLE,
  insufficient_storage: GrpcStatus.RESOURCE_EXHAUSTED,
  cancelled: GrpcStatus.CANCELLED,
  deadline_exceeded: GrpcStatus.DEADLINE_EXCEEDED,
  payload_too_large: GrpcStatus.RESOURCE_EXHAUSTED,
  request_timeout: GrpcStatus.DEADLINE_EXCEEDED,
  method_not_allowed: GrpcStatus.UNIMPLEMENTED,
  internal: GrpcStatus.INTERNAL,
};

const FROM_GRPC: Record<number, ErrorCode> = {
  [GrpcStatus.CANCELLED]: "cancelled",
  [GrpcStatus.INVALID_ARGUMENT]: "invalid_request",
  [GrpcStatus.OUT_OF_RANGE]: "invalid_request",
  [GrpcStatus.DEADLINE_EXCEEDED]: "deadline_exceeded",
  [GrpcStatus.NOT_FOUND]: "not_found",
  [GrpcStatus.ALREADY_EXISTS]: "conflict",
  [GrpcStatus.ABORTED]: "conflict",
  [GrpcStatus.PERMISSION_DENIED]: "permission_denied",
  [GrpcStatus.RESOURCE_EXHAUSTED]: "resource_exhausted",
  [GrpcStatus.FAILED_PRECONDITION]: "failed_precondition",
  [GrpcStatus.UNAVAILABLE]: "unavailable",
  [GrpcStatus.UNAUTHENTICATED]: "unauthenticated",
};

export function httpStatusOf(code: ErrorCode): number {
  return HTTP_STATUS[code] ?? 500;
}

export function grpcStatusOf(code: ErrorCode): number {
  return GRPC_STATUS[code] ?? GrpcStatus.INTERNAL;
}

/** UNKNOWN, INTERNAL, UNIMPLEMENTED, DATA_LOSS and anything unlisted map to "internal". */
export function errorCodeFromGrpc(status: number): ErrorCode {
  return FROM_GRPC[status] ?? "internal";
}

const OPENAI_TYPE: Record<ErrorCode, string> = {
  invalid_request: "invalid_request_error",
  unauthenticated: "authentication_error",
  permission_denied: "permission_error",
  not_found: "invalid_request_error",
  conflict: "invalid_request_error",
  failed_precondition: "invalid_request_error",
  resource_exhausted: "rate_limit_error",
  unavailable: "server_error",
  insufficient_storage: "server_error",
  cancelled: "invalid_request_error",
  deadline_exceeded: "server_error",
  payload_too_large: "invalid_request_error",
  request_timeout: "invalid_request_error",
  method_not_allowed: "invalid_request_error",
  internal: "server_error",
};

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** The OpenAI error envelope for any thrown value; never carries a stack or a cause. */
export function toOpenAIErrorBody(err: unknown): OpenAIErrorBody {
  const e = toBatchgenError(err);
  return {
    error: {
      message: e.message,
      type: OPENAI_TYPE[e.code] ?? "server_error",
      param: e.param ?? null,
      code: e.reason ?? e.code,
    },
  };
}
