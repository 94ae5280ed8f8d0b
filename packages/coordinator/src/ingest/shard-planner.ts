// Plans a batch's shards as its lines stream by at ingest.
//
// Without prefix packing (windowLines 0), a shard is a run of up to `shardLines`
// consecutive lines (and about `shardMaxBytes` bytes): one byte range.
//
// With prefix packing, lines are taken in windows of `windowLines` consecutive lines.
// Inside a window, lines with the same prefix key (prefix-key.ts) are packed into the
// same shards: each key's lines fill whole shards, and the remainders (fewer than a
// shard) are placed whole, largest first, into the first shard with room. A shard then
// holds several runs of consecutive lines (byte ranges); its lines stay in input order
// within it, and every shard of a window holds only lines of that window, so the
// finalizer can write a window's results in input order holding just that window.
// Shards of one key are planned next to each other (queued one after another), and
// each shard carries the key of most of its lines (the lease broker's affinity hint).
// Memory: one window of line positions.

import type { LineRun } from "../job-store.js";

export interface ShardRange {
  shard: number;
  /** The envelope: the first line, the number of lines, and the byte range covering them all. */
  firstLine: number;
  lineCount: number;
  byteStart: number;
  byteEnd: number;
  /** Set when the shard's lines are not one run (prefix packing): its runs, in line order. */
  runs?: LineRun[];
  /** Prefix packing: the prefix key most of its lines have. */
  prefixKey?: string;
}

export interface ShardPlannerOptions {
  shardLines: number;
  /** A shard ends after the line that brings it to this many bytes (default: no limit). */
  shardMaxBytes?: number;
  /** Lines per packing window; 0 = no packing (shards are consecutive lines). */
  windowLines?: number;
}

interface PlannedLine {
  line: number;
  start: number;
  end: number;
}

export class ShardPlanner {
  readonly shards: ShardRange[] = [];
  /** Prefix packing: the index of the first shard of each window. */
  readonly windows: number[] = [];
  private current: ShardRange | null = null;
  private window: Array<PlannedLine & { key: string }> = [];
  private readonly maxBytes: number;

  constructor(private readonly opts: ShardPlannerOptions) {
    this.maxBytes = opts.shardMaxBytes ?? Infinity;
  }

  get packing(): boolean {
    return (this.opts.windowLines ?? 0) > 0;
  }

  /** Adds the next request line (line indexes count up from 0 without gaps). */
  add(line: number, start: number, end: number, key: string): void {
    if (!this.packing) {
      this.addContiguous(line, start, end);
      return;
    }
    this.window.push({ line, start, end, key });
    if (this.window.length >= this.opts.windowLines!) this.flushWindow();
  }

  /** The plan once every line is added. */
  finish(): ShardRange[] {
    if (this.packing) this.flushWindow();
    this.current = null;
    return this.shards;
  }

  private addContiguous(line: number, start: number, end: number): void {
    if (!this.current) {
      this.current = { shard: this.shards.length, firstLine: line, lineCount: 0, byteStart: start, byteEnd: end };
      this.shards.push(this.current);
    }
    this.current.lineCount++;
    this.current.byteEnd = end;
    const full = this.current.byteEnd - this.current.byteStart >= this.maxBytes;
    if (this.current.lineCount === this.opts.shardLines || full) this.current = null;
  }

  private flushWindow(): void {
    if (this.window.length === 0) return;
    const groups = new Map<string, PlannedLine[]>();
    for (const l of this.window) {
      let g = groups.get(l.key);
      if (!g) groups.set(l.key, (g = []));
      g.push(l);
    }
    this.window = [];
    const bytesOf = (ls: PlannedLine[]) => ls.reduce((n, l) => n + (l.end - l.start), 0);
    interface Bin {
      lines: PlannedLine[];
      bytes: number;
      key: string;
      order: number;
    }
    const bins: Bin[] = [];
    const rests: Array<{ lines: PlannedLine[]; key: string; order: number }> = [];
    let order = 0;
    for (const [key, lines] of groups) {
      // Whole shards of this key, cut as a contiguous plan would cut them.
      let chunk: PlannedLine[] = [];
      let bytes = 0;
      for (const l of lines) {
        chunk.push(l);
        bytes += l.end - l.start;
        if (chunk.length === this.opts.shardLines || bytes >= this.maxBytes) {
          bins.push({ lines: chunk, bytes, key, order });
          chunk = [];
          bytes = 0;
        }
      }
      if (chunk.length > 0) rests.push({ lines: chunk, key, order });
      order++;
    }
    // Remainders whole, largest first, into the first shard with room (first-fit decreasing).
    rests.sort((a, b) => b.lines.length - a.lines.length || a.order - b.order);
    const open: Bin[] = [];
    for (const r of rests) {
      const bytes = bytesOf(r.lines);
      const bin = open.find((b) => b.lines.length + r.lines.length <= this.opts.shardLines && b.bytes + bytes < this.maxBytes);
      if (bin) {
        bin.lines.push(...r.lines);
        bin.bytes += bytes;
      } else {
        const b = { lines: [...r.lines], bytes, key: r.key, order: r.order };
        open.push(b);
        bins.push(b);
      }
    }
    // Shards of one key next to each other, in the order the keys first appeared.
    bins.sort((a, b) => a.order - b.order);
    this.windows.push(this.shards.length);
    for (const bin of bins) this.shards.push(shardOf(this.shards.length, bin.lines, bin.key));
  }
}

function shardOf(shard: number, lines: PlannedLine[], key: string): ShardRange {
  lines.sort((a, b) => a.line - b.line);
  const runs: LineRun[] = [];
  for (const l of lines) {
    const last = runs[runs.length - 1];
    if (last && last[0] + last[1] === l.line) {
      last[1]++;
      last[3] = l.end;
    } else {
      runs.push([l.line, 1, l.start, l.end]);
    }
  }
  const first = runs[0]!;
  const last = runs[runs.length - 1]!;
  return {
    shard,
    firstLine: first[0],
    lineCount: lines.length,
    byteStart: first[2],
    byteEnd: last[3],
    runs,
    prefixKey: key,
  };
}
