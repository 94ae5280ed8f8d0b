// Checks every line of a batch input file as it streams by and plans its shards: lines
// are validated one by one (core's parseBatchLine: a url batchgen serves, a body valid
// for that url) and across lines (unique custom_id, one model per batch, a model the
// fleet serves, max_tokens within the model's context). A line's url may differ from the
// batch's endpoint (a mixed batch, an extension) unless `strictEndpoint` asks for
// OpenAI's rule. Shards are planned by ShardPlanner: runs of up to `shardLines` lines
// (and about `shardMaxBytes` bytes), or, with prefix packing, lines of one prefix key
// packed together within windows of `prefixWindowLines` lines. With `skipInvalidLines`
// (an extension, the batch's metadata skip_invalid_lines: "true") an invalid line does
// not fail the batch: it is reported in `invalid`, to go to the error file, and stays in
// a shard like any line (with prefix packing, under the key "", which no valid line has)
// to be skipped when the shard is read (it is marked done at ingest).
import { BatchErrorCodes, parseBatchLine, type BatchError, type ParsedRequest } from "@batchgen/core";
import { CustomIdSet } from "./custom-id-set.js";
import { prefixKey } from "./prefix-key.js";
import { ShardPlanner, type ShardRange } from "./shard-planner.js";
import type { SplitLine } from "./split-lines.js";

export type { ShardRange };

/**
 * What the fleet serves: null for an unknown model; maxModelLen 0 when not known; `base`
 * when the name is a LoRA adapter served on that base model (whose queue it runs in).
 */
export type ModelLookup = (model: string) => { maxModelLen: number; base?: string } | null;

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
  /** Keep going past invalid lines (reported in `invalid`) instead of failing the batch. */
  skipInvalidLines?: boolean;
  /** Prefix packing window in lines; 0 or absent = shards of consecutive lines. */
  prefixWindowLines?: number;
  /** Characters of a prompt's lead that make its prefix key (prefix-key.ts). */
  prefixKeyChars?: number;
}

/** A line left out of the run (skipInvalidLines): it gets a line error in the error file. */
export interface InvalidLine {
  /** 0-based request line index (as results are indexed). */
  lineIndex: number;
  /** 1-based line number in the file. */
  lineNumber: number;
  /** The line's custom_id when it has a readable one. */
  customId: string | null;
  code: string;
  message: string;
  param: string | null;
}

export interface ValidationResult {
  errors: BatchError[];
  /** Errors found, including those beyond maxReportedErrors. */
  errorCount: number;
  total: number;
  model: string | null;
  shards: ShardRange[];
  /** skipInvalidLines: the lines left out (every one, in file order). */
  invalid: InvalidLine[];
  /** Prefix packing: the first shard of each window (empty without packing). */
  windows: number[];
  /** LoRA adapters the lines name (the batch's model is their base), in first-seen order. */
  adapters: string[];
  /** Per shard (same order as shards): the adapters its lines name, for the leasing hint. */
  shardAdapters: string[][];
}

export class InputValidator {
  private readonly ids = new CustomIdSet();
  private readonly errors: BatchError[] = [];
  private errorCount = 0;
  private total = 0;
  private model: string | null = null;
  private maxModelLen = 0;
  private readonly planner: ShardPlanner;
  private readonly invalid: InvalidLine[] = [];
  private lineIndex = -1;
  private lineText: string | null = null;
  /** LoRA adapters named so far, and per line the adapter's index + 1 (0: the base model). */
  private readonly adapters: string[] = [];
  private adapterOfLine = new Uint8Array(0);

  constructor(private readonly opts: InputValidatorOptions) {
    this.planner = new ShardPlanner({ shardLines: opts.shardLines, shardMaxBytes: opts.shardMaxBytes, windowLines: opts.prefixWindowLines ?? 0 });
  }

  /** True once enough errors are known that reading further changes nothing. */
  get saturated(): boolean {
    return !this.opts.skipInvalidLines && this.errorCount >= this.opts.maxReportedErrors;
  }

  add(line: SplitLine): void {
    // Blank lines (a trailing empty line, say) are not requests: they get no line index.
    if (line.text !== null && line.text.trim() === "") return;
    const lineIndex = this.total++;
    this.lineIndex = lineIndex;
    this.lineText = line.text;
    const request = this.check(line);
    if (this.errorCount > 0 && !this.opts.skipInvalidLines) return; // a failed batch needs no shards
    // An invalid line (skipInvalidLines) keeps its place in a shard, under the key "".
    const key = this.planner.packing && request ? prefixKey(request, this.opts.prefixKeyChars) : "";
    this.planner.add(lineIndex, line.start, line.end, key);
  }

  finish(): ValidationResult {
    this.lineIndex = -1;
    if (this.total === 0) {
      this.fail(BatchErrorCodes.emptyFile, "The input file is empty: it has no request lines.", null, null);
    } else if (this.opts.skipInvalidLines && this.invalid.length === this.total) {
      this.fail(BatchErrorCodes.invalidRequest, "skip_invalid_lines: no line of the file is valid; nothing to run.", null, null);
    }
    // Skipping invalid lines, only file-level errors fail the batch.
    const failed = this.opts.skipInvalidLines ? this.errorCount > this.invalid.length : this.errorCount > 0;
    const shards = failed ? [] : this.planner.finish();
    return {
      errors: this.errors,
      errorCount: this.errorCount,
      total: this.total,
      model: this.model,
      shards,
      windows: failed ? [] : this.planner.windows,
      invalid: this.invalid,
      adapters: this.adapters,
      shardAdapters: shards.map((s) => this.adaptersOf(s)),
    };
  }

  /** The adapters a shard's lines name. */
  private adaptersOf(s: ShardRange): string[] {
    if (this.adapters.length === 0) return [];
    const seen = new Set<number>();
    for (const [first, count] of s.runs ?? [[s.firstLine, s.lineCount]]) {
      for (let i = first; i < first + count && i < this.adapterOfLine.length; i++) if (this.adapterOfLine[i]! > 0) seen.add(this.adapterOfLine[i]!);
    }
    return [...seen].sort((a, b) => a - b).map((id) => this.adapters[id - 1]!);
  }

  /** Records that line `lineIndex` names `adapter` (hints only: past 255 adapters a batch's extra ones go unrecorded). */
  private noteAdapter(lineIndex: number, adapter: string): void {
    let id = this.adapters.indexOf(adapter) + 1;
    if (id === 0) {
      if (this.adapters.length >= 255) return;
      this.adapters.push(adapter);
      id = this.adapters.length;
    }
    if (lineIndex >= this.adapterOfLine.length) {
      const grown = new Uint8Array(Math.max(1024, lineIndex * 2));
      grown.set(this.adapterOfLine);
      this.adapterOfLine = grown;
    }
    this.adapterOfLine[lineIndex] = id;
  }

  private fail(code: string, message: string, param: string | null, line: number | null): void {
    this.errorCount++;
    if (this.errors.length < this.opts.maxReportedErrors) this.errors.push({ code, message, param, line });
    if (this.opts.skipInvalidLines && line !== null && this.lineIndex >= 0) {
      this.invalid.push({ lineIndex: this.lineIndex, lineNumber: line, customId: readableCustomId(this.lineText), code, message, param });
    }
  }

  /** The line's request when it is valid, else null (its error recorded). */
  private check(line: SplitLine): ParsedRequest | null {
    const n = line.number;
    if (line.invalidUtf8) {
      this.fail(BatchErrorCodes.invalidUtf8, "This line is not valid UTF-8; input files must be UTF-8 encoded.", null, n);
      return null;
    }
    if (line.text === null) {
      this.fail(
        BatchErrorCodes.lineTooLarge,
        `This line is ${line.bytes} bytes; a request line may be at most ${this.opts.maxLineBytes} bytes.`,
        null,
        n,
      );
      return null;
    }
    const parsed = parseBatchLine(line.text, n);
    if (!parsed.ok) {
      this.fail(parsed.code, parsed.message, parsed.param, n);
      return null;
    }
    const { line: input, request } = parsed;
    if (this.opts.strictEndpoint && input.url !== this.opts.endpoint) {
      this.fail(
        BatchErrorCodes.mismatchedEndpoint,
        `The url ${JSON.stringify(input.url)} does not match the batch endpoint ${JSON.stringify(this.opts.endpoint)}.`,
        "url",
        n,
      );
      return null;
    }
    if (!this.ids.add(input.custom_id)) {
      this.fail(
        BatchErrorCodes.duplicateCustomId,
        `The custom_id ${JSON.stringify(input.custom_id)} is used by an earlier line; each custom_id must be unique in the batch.`,
        "custom_id",
        n,
      );
      return null;
    }
    const served = this.opts.lookupModel(request.model);
    // A LoRA adapter runs in its base model's queue: the batch's model is the base.
    const base = served?.base ?? request.model;
    if (this.model === null) {
      // Skipping invalid lines, the batch's model is the first one served.
      if (served || !this.opts.skipInvalidLines) this.model = base;
      if (!served) {
        this.fail(
          BatchErrorCodes.modelNotFound,
          `The model ${JSON.stringify(request.model)} is not served by any connected worker.`,
          "body.model",
          n,
        );
        return null;
      }
      this.maxModelLen = served.maxModelLen;
    } else if (base !== this.model) {
      this.fail(
        BatchErrorCodes.mismatchedModel,
        `The model ${JSON.stringify(request.model)} differs from ${JSON.stringify(this.model)} of the first line; a batch uses one model (or LoRA adapters of it).`,
        "body.model",
        n,
      );
      return null;
    }
    if (served?.base !== undefined) this.noteAdapter(this.lineIndex, request.model);
    if (this.maxModelLen > 0 && request.maxTokens !== null && request.maxTokens > this.maxModelLen) {
      this.fail(
        BatchErrorCodes.tokenLimitExceeded,
        `max_tokens ${request.maxTokens} exceeds the model's context length of ${this.maxModelLen} tokens.`,
        "body.max_tokens",
        n,
      );
      return null;
    }
    return request;
  }
}

/** The custom_id of a line that may not be valid JSON (or not an object), when it has a string one. */
function readableCustomId(text: string | null): string | null {
  if (text === null) return null;
  try {
    const v = (JSON.parse(text) as { custom_id?: unknown } | null)?.custom_id;
    return typeof v === "string" ? v : null;
  } catch {
    return null;
  }
}
