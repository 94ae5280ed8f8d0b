// A request line that cannot be run: it becomes a LineError on the wire and a line of
// the batch's errors file; the rest of the batch goes on.
export type LineErrorCode = "invalid_request" | "context_length_exceeded" | "engine_error";

export class LineFailure extends Error {
  constructor(
    readonly code: LineErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "LineFailure";
  }
}
