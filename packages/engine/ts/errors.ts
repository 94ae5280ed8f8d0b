// The engine's error vocabulary: one class per native error code. The native
// binding throws plain Errors with a `code`; ts/native.ts turns them into these.

/** Base class of every error the engine raises; `code` is machine-readable. */
export class EngineError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A bad option or request value (code "invalid_argument"). */
export class InvalidArgumentError extends EngineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("invalid_argument", message, options);
  }
}

/** Missing or corrupt model files (code "model_load"). */
export class ModelLoadError extends EngineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("model_load", message, options);
  }
}

/** An architecture or feature the engine does not implement (code "unsupported"). */
export class UnsupportedError extends EngineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("unsupported", message, options);
  }
}

/** Host or device memory ran out (code "out_of_memory"). */
export class OutOfMemoryError extends EngineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("out_of_memory", message, options);
  }
}

/** The device failed or does not exist (code "device"). */
export class DeviceError extends EngineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("device", message, options);
  }
}

/** An unknown request id (code "not_found"). */
export class NotFoundError extends EngineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("not_found", message, options);
  }
}
