import { describe, expect, it } from "vitest";
import { ShardPlanner, type ShardRange } from "./shard-planner.js";

// Line i is 10 bytes at [10 i, 10 i + 10), its key keys[i].
function plan(keys: string[], shardLines: number, windowLines: number, shardMaxBytes?: number): { shards: ShardRange[]; windows: number[] } {
  const p = new ShardPlanner({ shardLines, windowLines, shardMaxBytes });
  keys.forEach((k, i) => p.add(i, 10 * i, 10 * i + 10, k));
  const shards = p.finish();
  return { shards, windows: p.windows };
}

const linesOf = (s: ShardRange): number[] => (s.runs ?? [[s.firstLine, s.lineCount, s.byteStart, s.byteEnd]]).flatMap(([f, n]) => Array.from({ length: n }, (_, i) => f + i));

describe("ShardPlanner", () => {
  it("without packing, cuts consecutive lines as before", () => {
    const { shards, windows } = plan(["a", "b", "a", "b", "a"], 2, 0);
    expect(shards.map((s) => [s.firstLine, s.lineCount, s.byteStart, s.byteEnd, s.runs])).toEqual([
      [0, 2, 0, 20, undefined],
      [2, 2, 20, 40, undefined],
      [4, 1, 40, 50, undefined],
    ]);
    expect(windows).toEqual([]);
  });

  it("packs lines with the same key into the same shards, each line exactly once", () => {
    // Interleaved keys: a b c a b c ..., 4 lines a shard, one window.
    const keys = Array.from({ length: 24 }, (_, i) => "abc"[i % 3]!);
    const { shards, windows } = plan(keys, 4, 100);
    expect(windows).toEqual([0]);
    for (const s of shards) {
      const ks = new Set(linesOf(s).map((l) => keys[l]));
      expect(ks.size, `shard ${s.shard}`).toBe(1);
      expect(s.prefixKey).toBe([...ks][0]);
      expect(s.lineCount).toBe(linesOf(s).length);
    }
    const all = shards.flatMap(linesOf).sort((x, y) => x - y);
    expect(all).toEqual(keys.map((_, i) => i));
    // A key's shards are planned next to each other.
    expect(shards.map((s) => s.prefixKey)).toEqual(["a", "a", "b", "b", "c", "c"]);
    // Runs hold line order and byte ranges.
    expect(shards[0]!.runs).toEqual([
      [0, 1, 0, 10],
      [3, 1, 30, 40],
      [6, 1, 60, 70],
      [9, 1, 90, 100],
    ]);
  });

  it("keeps a small key's lines whole in one shard, largest remainders first", () => {
    // Key x: 5 lines (one full shard of 4 + 1), y: 3, z: 2, w: 1 -> remainders 3, 2, 1, 1.
    const keys = ["x", "y", "x", "z", "x", "y", "w", "x", "z", "y", "x"];
    const { shards } = plan(keys, 4, 100);
    const groups = shards.map((s) => linesOf(s).map((l) => keys[l]).join(""));
    // y's 3 lines with x's last one; z's 2 with w's 1: no small key is split across shards.
    expect(groups).toEqual(["xxxx", "yyyx", "zwz"]);
    expect(shards.map((s) => s.prefixKey)).toEqual(["x", "y", "z"]);
    for (const k of ["y", "z", "w"]) expect(shards.filter((s) => linesOf(s).some((l) => keys[l] === k))).toHaveLength(1);
    expect(shards.flatMap(linesOf).sort((a, b) => a - b)).toEqual(keys.map((_, i) => i));
  });

  it("never mixes lines of two windows in a shard, and records where each window starts", () => {
    const keys = Array.from({ length: 10 }, (_, i) => (i % 2 ? "p" : "q"));
    const { shards, windows } = plan(keys, 3, 4);
    expect(windows.length).toBe(3);
    for (let w = 0; w < windows.length; w++) {
      const end = windows[w + 1] ?? shards.length;
      const lines = shards.slice(windows[w], end).flatMap(linesOf).sort((a, b) => a - b);
      expect(lines).toEqual(Array.from({ length: lines.length }, (_, i) => 4 * w + i));
    }
  });

  it("ends a shard at shardMaxBytes within a key", () => {
    const { shards } = plan(["k", "k", "k", "k", "k"], 10, 100, 25);
    expect(shards.map((s) => s.lineCount)).toEqual([3, 2]);
  });
});
