import { describe, expect, it } from "vitest";
import { CharTokenizerDouble } from "../test/support/char-tokenizer-double.js";
import { applyStopStrings, findFirstStop, planStopStrings } from "./stop-strings.js";

const tok = new CharTokenizerDouble(["END", "\n\n"]);
const decode = (ids: number[]) => tok.decode(ids, { skipSpecialTokens: true });
const enc = (s: string) => tok.encode(s, { addSpecialTokens: false });

describe("planStopStrings", () => {
  it("turns single-token stop strings into stop token ids and keeps every string for text search", () => {
    const plan = planStopStrings(["END", "\n\n", "stop here", "x"], tok);
    expect(plan.stopTokenIds.sort()).toEqual([...enc("END"), ...enc("\n\n"), ...enc("x")].sort());
    expect(plan.textStops).toEqual(["END", "\n\n", "stop here", "x"]);
  });

  it("has nothing to do without stop strings", () => {
    expect(planStopStrings([], tok)).toEqual({ stopTokenIds: [], textStops: [] });
  });
});

describe("applyStopStrings", () => {
  it("cuts the text before the first stop string and counts tokens through it", () => {
    const tokens = enc("hello world. more text");
    const out = applyStopStrings(tokens, ["world"], decode);
    expect(out).toEqual({ text: "hello ", stopped: true, tokenCount: "hello world".length });
  });

  it("takes the earliest of several stop strings", () => {
    const out = applyStopStrings(enc("aa##bb@@cc"), ["@@", "##"], decode);
    expect(out.text).toBe("aa");
    expect(out.tokenCount).toBe(4);
  });

  it("finds a stop string inside a longer token", () => {
    // "\n\n" is one token; a stop "\n" sits inside it.
    const tokens = enc("line one\n\nline two");
    const out = applyStopStrings(tokens, ["\n"], decode);
    expect(out.text).toBe("line one");
    expect(out.tokenCount).toBe("line one".length + 1);
  });

  it("leaves text without a stop string alone", () => {
    const tokens = enc("nothing to see");
    expect(applyStopStrings(tokens, ["zzz"], decode)).toEqual({ text: "nothing to see", stopped: false, tokenCount: tokens.length });
  });

  it("cuts at a stop string the engine already stopped on (the stop token is the last one)", () => {
    const tokens = enc("answer: 42END");
    const out = applyStopStrings(tokens, ["END"], decode);
    expect(out).toEqual({ text: "answer: 42", stopped: true, tokenCount: tokens.length });
  });

  it("skips special tokens when decoding", () => {
    expect(applyStopStrings([...enc("ok"), 1], [], decode).text).toBe("ok");
  });
});

describe("findFirstStop", () => {
  it("returns -1 when no stop string occurs", () => {
    expect(findFirstStop("abc", ["d"])).toBe(-1);
    expect(findFirstStop("abcabc", ["c", "b"])).toBe(1);
  });
});
