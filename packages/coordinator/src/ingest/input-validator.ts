// Checks every line of a batch input file as it streams by and plans its shards: lines
// are validated one by one (core's parseBatchLine: a url batchgen serves, a body valid
// for that url) and across lines (unique custom_id, one model per batch, a model the
// fleet serves, max_tokens within the model's context). A line's url may differ from the
// batch's endpoint (a mixed batch, an extension) unless `strictEndpoint` asks for
// OpenAI's rule. Shards are runs of up to `shardLines` lines (and about `shardMaxBytes`
// bytes) as byte ranges.
import { BatchErrorCodes, parseBatchLine, type BatchError } from "@batchgen/core";
import { CustomIdSet } from "./custom-id-set.js";
import type { SplitLine } from "./split-lines.js";

export interface ShardRange {
  shard: number;
  firstLine: number;
  lineCount: number;
  byteStart: number;
  byteEnd: number;
}

/** What the fleet serves: null for an unknown model; maxModelLen 0 when not known. */
export type ModelLookup = (model: string) => { maxModelLen: number } | null;

export interface InputValidatorOptions {
  endpoint: string;
  /** OpenAI's rule: every line's url equals `endpoint` (else mismatched_endpoint). Default false. */
  strictEndpoint?: boolean;
  shardLines: number;
  /** A shard ends after the line that brings it to this many bytes (default: no limit). */
  shardMaxBytes?: number;
  maxLineBytes: number;
  maxReportedErrors: number;
  lookupModel: ModelLookup;
}

export interface ValidationResult {
  errors: BatchError[];
  /** Errors found, including those beyond maxReportedErrors. */
  errorCount: number;
  total: number;
  model: string | null;
  shards: ShardRange[];
}

export class InputValidator {
  private readonly ids = new CustomIdSet();
  private readonly errors: BatchError[] = [];
  private errorCount = 0;
  private total = 0;
  private model: string | null = null;
  private maxModelLen = 0;
  private readonly shards: ShardRange[] = [];
  private current: ShardRange | null = null;

  constructor(private readonly opts: InputValidatorOptions) {}

  /** True once enough errors are known that reading further changes nothing. */
  get saturated(): boolean {
    return this.errorCount >= this.opts.maxReportedErrors;
  }

  add(line: SplitLine): void {
    // Blank lines (a trailing empty line, say) are not requests: they get no line index.
    if (line.text !== null && line.text.trim() === "") return;
    const lineIndex = this.total++;
    this.check(line);
    if (this.errorCount > 0) return; // a failed batch needs no shards
    if (!this.current) {
      this.current = { shard: this.shards.length, firstLine: lineIndex, lineCount: 0, byteStart: line.start, byteEnd: line.end };
      this.shards.push(this.current);
    }
    this.current.lineCount++;
    this.current.byteEnd = line.end;
    const full = this.current.byteEnd - this.current.byteStart >= (this.opts.shardMaxBytes ?? Infinity);
    if (this.current.lineCount === this.opts.shardLines || full) this.current = null;
  }

  finish(): ValidationResult {
    if (this.total === 0) {
      this.fail(BatchErrorCodes.emptyFile, "The input file is empty: it has no request lines.", null, null);
    }
    return {
      errors: this.errors,
      errorCount: this.errorCount,
      total: this.total,
      model: this.model,
      shards: this.errorCount > 0 ? [] : this.shards,
    };
  }

  private fail(code: string, message: string, param: string | null, line: number | null): void {
    this.errorCount++;
    if (this.errors.length < this.opts.maxReportedErrors) this.errors.push({ code, message, param, line });
  }

  private check(line: SplitLine): void {
    const n = line.number;
    if (line.invalidUtf8) {
      this.fail(BatchErrorCodes.invalidUtf8, "This line is not valid UTF-8; input files must be UTF-8 encoded.", null, n);
      return;
    }
    if (line.text === null) {
      this.fail(
        BatchErrorCodes.lineTooLarge,
        `This line is ${line.bytes} bytes; a request line may be at most ${this.opts.maxLineBytes} bytes.`,
        null,
        n,
      );
      return;
    }
    const parsed = parseBatchLine(line.text, n);
    if (!parsed.ok) {
      this.fail(parsed.code, parsed.message, parsed.param, n);
      return;
    }
    const { line: input, request } = parsed;
    if (this.opts.strictEndpoint && input.url !== this.opts.endpoint) {
      this.fail(
        BatchErrorCodes.mismatchedEndpoint,
        `The url ${JSON.stringify(input.url)} does not match the batch endpoint ${JSON.stringify(this.opts.endpoint)}.`,
        "url",
        n,
      );
      return;
    }
    if (!this.ids.add(input.custom_id)) {
      this.fail(
        BatchErrorCodes.duplicateCustomId,
        `The custom_id ${JSON.stringify(input.custom_id)} is used by an earlier line; each custom_id must be unique in the batch.`,
        "custom_id",
        n,
      );
      return;
    }
    if (this.model === null) {
      this.model = request.model;
      const served = this.opts.lookupModel(request.model);
      if (!served) {
        this.fail(
          BatchErrorCodes.modelNotFound,
          `The model ${JSON.stringify(request.model)} is not served by any connected worker.`,
          "body.model",
          n,
        );
        return;
      }
      this.maxModelLen = served.maxModelLen;
    } else if (request.model !== this.model) {
      this.fail(
        BatchErrorCodes.mismatchedModel,
        `The model ${JSON.stringify(request.model)} differs from ${JSON.stringify(this.model)} of the first line; a batch uses one model.`,
        "body.model",
        n,
      );
      return;
    }
    if (this.maxModelLen > 0 && request.maxTokens !== null && request.maxTokens > this.maxModelLen) {
      this.fail(
        BatchErrorCodes.tokenLimitExceeded,
        `max_tokens ${request.maxTokens} exceeds the model's context length of ${this.maxModelLen} tokens.`,
        "body.max_tokens",
        n,
      );
    }
  }
}
