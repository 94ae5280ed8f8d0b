import { describe, expect, it } from "vitest";
import { CustomIdSet } from "./custom-id-set.js";
import { InputValidator, type ModelLookup } from "./input-validator.js";
import type { SplitLine } from "./split-lines.js";

const line = (id: string, model = "m", extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model, messages: [{ role: "user", content: "hi" }], ...extra } });

const completionLine = (id: string, model = "m"): string =>
  JSON.stringify({ custom_id: id, method: "POST", url: "/v1/completions", body: { model, prompt: "x" } });

function validate(texts: Array<string | null>, opts: { shardLines?: number; lookup?: ModelLookup; maxErrors?: number; strictEndpoint?: boolean; skip?: boolean } = {}) {
  const v = new InputValidator({
    skipInvalidLines: opts.skip,
    endpoint: "/v1/chat/completions",
    strictEndpoint: opts.strictEndpoint,
    shardLines: opts.shardLines ?? 2,
    maxLineBytes: 1000,
    maxReportedErrors: opts.maxErrors ?? 100,
    lookupModel: opts.lookup ?? ((m) => (m === "m" ? { maxModelLen: 100 } : null)),
  });
  let offset = 0;
  texts.forEach((text, i) => {
    const len = text === null ? 5000 : Buffer.byteLength(text) + 1;
    const l: SplitLine = { number: i + 1, start: offset, end: offset + len, text, bytes: len - 1 };
    offset += len;
    v.add(l);
  });
  return v.finish();
}

describe("InputValidator", () => {
  it("queues lines naming LoRA adapters under their base model and records each shard's adapters", () => {
    const lookup: ModelLookup = (m) =>
      m === "m" ? { maxModelLen: 100 } : m === "pirate" || m === "legal" ? { maxModelLen: 100, base: "m" } : m === "x-lora" ? { maxModelLen: 50, base: "other" } : null;
    const r = validate([line("a", "pirate"), line("b"), line("c", "legal"), line("d", "pirate"), line("e")], { shardLines: 2, lookup });
    expect(r.errors).toEqual([]);
    expect(r.model).toBe("m");
    expect(r.adapters).toEqual(["pirate", "legal"]);
    expect(r.shardAdapters).toEqual([["pirate"], ["pirate", "legal"], []]);
    // An adapter of another base cannot join the batch.
    const mixed = validate([line("a", "pirate"), line("b", "x-lora")], { lookup });
    expect(mixed.errors.map((e) => [e.code, e.line])).toEqual([["mismatched_model", 2]]);
  });

  it("plans shards of N request lines as byte ranges", () => {
    const r = validate([line("a"), line("b"), line("c"), "", line("d"), line("e")], { shardLines: 2 });
    expect(r.errors).toEqual([]);
    expect(r.total).toBe(5);
    expect(r.model).toBe("m");
    const len = line("a").length + 1;
    expect(r.shards).toEqual([
      { shard: 0, firstLine: 0, lineCount: 2, byteStart: 0, byteEnd: 2 * len },
      // the blank line inside shard 1 is in its byte range but gets no line index
      { shard: 1, firstLine: 2, lineCount: 2, byteStart: 2 * len, byteEnd: 4 * len + 1 },
      { shard: 2, firstLine: 4, lineCount: 1, byteStart: 4 * len + 1, byteEnd: 5 * len + 1 },
    ]);
  });

  it("ends a shard early once it holds shardMaxBytes", () => {
    const v = new InputValidator({
      endpoint: "/v1/chat/completions",
      shardLines: 100,
      shardMaxBytes: 250,
      maxLineBytes: 1000,
      maxReportedErrors: 10,
      lookupModel: () => ({ maxModelLen: 0 }),
    });
    let offset = 0;
    for (let i = 0; i < 5; i++) {
      const text = line(`id${i}`); // 130 bytes with its newline
      v.add({ number: i + 1, start: offset, end: offset + text.length + 1, text, bytes: text.length });
      offset += text.length + 1;
    }
    const r = v.finish();
    expect(r.shards.map((s) => [s.firstLine, s.lineCount])).toEqual([
      [0, 2],
      [2, 2],
      [4, 1],
    ]);
  });

  it("reports line-numbered errors of every kind and plans no shards", () => {
    const r = validate([
      line("a"),
      "{bad",
      line("a"),
      line("b", "other"),
      JSON.stringify({ custom_id: "u", method: "POST", url: "/v1/moderations", body: { model: "m", input: "x" } }),
      line("c", "m", { max_tokens: 101 }),
      null,
      line("d"),
    ]);
    expect(r.errors.map((e) => [e.line, e.code])).toEqual([
      [2, "invalid_json_line"],
      [3, "duplicate_custom_id"],
      [4, "mismatched_model"],
      [5, "invalid_url"],
      [6, "token_limit_exceeded"],
      [7, "line_too_large"],
    ]);
    expect(r.shards).toEqual([]);
  });

  it("accepts chat and completion lines in one batch (mixed batches, an extension)", () => {
    const r = validate([line("a"), completionLine("b"), line("c"), completionLine("d", "other")]);
    expect(r.errors.map((e) => [e.line, e.code])).toEqual([[4, "mismatched_model"]]);
    const ok = validate([completionLine("a"), line("b"), completionLine("c")]);
    expect(ok.errors).toEqual([]);
    expect(ok.total).toBe(3);
    expect(ok.shards.map((s) => s.lineCount)).toEqual([2, 1]);
    // A completion body under a chat url is still checked against the line's own url.
    const wrongBody = JSON.stringify({ custom_id: "w", method: "POST", url: "/v1/chat/completions", body: { model: "m", prompt: "x" } });
    expect(validate([wrongBody]).errors.map((e) => [e.line, e.param])).toEqual([[1, "body.messages"]]);
  });

  it("with strictEndpoint, rejects a line whose url differs from the batch endpoint, as OpenAI does", () => {
    const r = validate([line("a"), completionLine("b"), line("c")], { strictEndpoint: true });
    expect(r.errors).toEqual([
      { code: "mismatched_endpoint", message: expect.stringContaining('"/v1/completions"'), param: "url", line: 2 },
    ]);
    expect(r.shards).toEqual([]);
  });

  it("reports an unknown model once, at its first line", () => {
    const r = validate([line("a", "x"), line("b", "x")]);
    expect(r.errors).toEqual([{ code: "model_not_found", message: expect.stringContaining('"x"'), param: "body.model", line: 1 }]);
  });

  it("an empty file (or only blank lines) fails", () => {
    expect(validate([]).errors.map((e) => e.code)).toEqual(["empty_file"]);
    expect(validate(["", "  "]).errors.map((e) => e.code)).toEqual(["empty_file"]);
  });

  it("caps the reported errors and says when enough are known", () => {
    const v = new InputValidator({ endpoint: "/v1/chat/completions", shardLines: 2, maxLineBytes: 10, maxReportedErrors: 3, lookupModel: () => null });
    for (let i = 1; i <= 3; i++) v.add({ number: i, start: 0, end: 1, text: "{", bytes: 1 });
    expect(v.saturated).toBe(true);
    v.add({ number: 4, start: 0, end: 1, text: "{", bytes: 1 });
    const r = v.finish();
    expect(r.errors).toHaveLength(3);
    expect(r.errorCount).toBe(4);
  });
});

describe("CustomIdSet", () => {
  it("finds repeats of short and long ids, and never confuses the two kinds", () => {
    const s = new CustomIdSet();
    const long = "z".repeat(300);
    expect(s.add("a")).toBe(true);
    expect(s.add(long)).toBe(true);
    expect(s.add("a")).toBe(false);
    expect(s.add(long)).toBe(false);
    expect(s.add(long + "!")).toBe(true);
    expect(s.size).toBe(3);
  });

  describe("skipInvalidLines (metadata skip_invalid_lines)", () => {
    it("keeps invalid lines in their shards and reports each with its index, line number, custom_id and code", () => {
      const texts = [line("a"), "{not json", line("b"), "", line("a"), line("c", "other"), line("d", "m", { max_tokens: 500 }), null, line("e")];
      const r = validate(texts, { skip: true, shardLines: 3, maxErrors: 2 });
      expect(r.total).toBe(8);
      expect(r.model).toBe("m");
      expect(r.shards.map((s) => [s.firstLine, s.lineCount])).toEqual([[0, 3], [3, 3], [6, 2]]);
      expect(r.invalid.map((l) => [l.lineIndex, l.lineNumber, l.customId, l.code])).toEqual([
        [1, 2, null, "invalid_json_line"],
        [3, 5, "a", "duplicate_custom_id"],
        [4, 6, "c", "mismatched_model"],
        [5, 7, "d", "token_limit_exceeded"],
        [6, 8, null, "line_too_large"],
      ]);
      // Every invalid line is kept even past maxReportedErrors.
      expect(r.errors).toHaveLength(2);
    });

    it("takes the first served model; a file with no valid line still fails", () => {
      const r = validate([line("a", "nope"), line("b"), line("c", "nope")], { skip: true });
      expect(r.model).toBe("m");
      expect(r.invalid.map((l) => [l.lineIndex, l.code])).toEqual([[0, "model_not_found"], [2, "mismatched_model"]]);
      expect(r.shards.length).toBeGreaterThan(0);
      const none = validate(["{", line("x", "nope")], { skip: true });
      expect(none.shards).toEqual([]);
      expect(none.errors.at(-1)?.message).toMatch(/no line of the file is valid/);
    });

    it("is off by default: one invalid line fails the batch (OpenAI's rule)", () => {
      const r = validate([line("a"), "{not json", line("b")]);
      expect(r.shards).toEqual([]);
      expect(r.invalid).toEqual([]);
      expect(r.errors.map((e) => e.line)).toEqual([2]);
    });
  });
});

describe("InputValidator, encodings", () => {
  it("reports a line that is not valid UTF-8 as invalid_utf8 with its line number", () => {
    const v = new InputValidator({
      endpoint: "/v1/chat/completions",
      shardLines: 10,
      maxLineBytes: 1000,
      maxReportedErrors: 10,
      lookupModel: () => ({ maxModelLen: 0 }),
    });
    const text = line("a");
    v.add({ number: 1, start: 0, end: text.length + 1, text, bytes: text.length });
    v.add({ number: 2, start: text.length + 1, end: text.length + 20, text: null, bytes: 18, invalidUtf8: true });
    const r = v.finish();
    expect(r.errors).toEqual([expect.objectContaining({ code: "invalid_utf8", line: 2 })]);
    expect(r.shards).toEqual([]);
  });
});
