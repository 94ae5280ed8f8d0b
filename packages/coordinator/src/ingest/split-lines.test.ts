import { describe, expect, it } from "vitest";
import { splitLines, type SplitLine } from "./split-lines.js";

async function collect(chunks: Array<string | Buffer>, max = 100): Promise<SplitLine[]> {
  async function* src(): AsyncGenerator<Buffer> {
    for (const c of chunks) yield Buffer.isBuffer(c) ? c : Buffer.from(c);
  }
  const out: SplitLine[] = [];
  for await (const l of splitLines(src(), max)) out.push(l);
  return out;
}

describe("splitLines", () => {
  it("gives each line with its byte range, across chunk boundaries", async () => {
    const lines = await collect(["ab", "c\nde", "f\n", "g"]);
    expect(lines).toEqual([
      { number: 1, start: 0, end: 4, text: "abc", bytes: 3 },
      { number: 2, start: 4, end: 8, text: "def", bytes: 3 },
      { number: 3, start: 8, end: 9, text: "g", bytes: 1 },
    ]);
  });

  it("strips CRLF and a UTF-8 BOM, counts bytes not characters", async () => {
    const lines = await collect([Buffer.from([0xef, 0xbb, 0xbf]), "é\r\n", "x\n"]);
    expect(lines[0]).toEqual({ number: 1, start: 3, end: 7, text: "é", bytes: 2 });
    expect(lines[1]).toEqual({ number: 2, start: 7, end: 9, text: "x", bytes: 1 });
  });

  it("skips a line longer than the limit without holding it, and goes on", async () => {
    const long = "y".repeat(1000);
    const lines = await collect(["a\n", long.slice(0, 400), long.slice(400), "\nb\n"], 10);
    expect(lines.map((l) => [l.number, l.text])).toEqual([
      [1, "a"],
      [2, null],
      [3, "b"],
    ]);
    expect(lines[1]!.start).toBe(2);
    expect(lines[1]!.end).toBe(1003);
    expect(lines[1]!.bytes).toBeGreaterThan(10);
  });

  it("a line of exactly the limit passes, one byte more does not", async () => {
    const lines = await collect(["0123456789\n", "0123456789a\n", "0123456789\r\n"], 10);
    expect(lines.map((l) => l.text)).toEqual(["0123456789", null, "0123456789"]);
  });

  it("yields nothing for an empty stream and a blank line for a lone newline", async () => {
    expect(await collect([])).toEqual([]);
    expect(await collect(["\n"])).toEqual([{ number: 1, start: 0, end: 1, text: "", bytes: 0 }]);
  });

  it("gives a line that is not valid UTF-8 as invalidUtf8 with no text, even split across chunks", async () => {
    const bad = Buffer.from('{"custom_id":"a\xff"}\n', "latin1");
    const euro = Buffer.from("\u20ac\n"); // 3 bytes, split between chunks below
    const lines = await collect([bad, euro.subarray(0, 1), euro.subarray(1), Buffer.from([0xc3, 0x28, 0x0a]), "ok"]);
    expect(lines.map((l) => [l.text, l.invalidUtf8 ?? false])).toEqual([
      [null, true],
      ["\u20ac", false],
      [null, true],
      ["ok", false],
    ]);
    expect(lines[0]!.bytes).toBe(bad.length - 1);
  });

  it("strips a BOM split across chunks, and keeps a file shorter than a BOM", async () => {
    const lines = await collect([Buffer.from([0xef]), Buffer.from([0xbb]), Buffer.from([0xbf, 0x61, 0x0a])]);
    expect(lines).toEqual([{ number: 1, start: 3, end: 5, text: "a", bytes: 1 }]);
    expect((await collect([Buffer.from("x")])).map((l) => l.text)).toEqual(["x"]);
    expect((await collect([Buffer.from([0xef, 0xbb])])).map((l) => l.invalidUtf8)).toEqual([true]);
  });
});
