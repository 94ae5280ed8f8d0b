// The request lines of a shard, read back from the input file's byte ranges. Line indexes
// count request lines from 0 across the file (blank lines are skipped, as at ingest).
// Each line keeps its own url: in a mixed batch it may differ from the batch's endpoint.
// A prefix-packed shard is several runs of consecutive lines; runs closer than
// MERGE_GAP_BYTES are read with one range request (the lines between them skipped).
import type { ObjectStore } from "@batchgen/core";
import type { JobStore, LineRun, ShardJobData } from "./job-store.js";

export interface ShardLine {
  lineIndex: number;
  customId: string;
  bodyJson: string;
  /** The line's endpoint (validated at ingest). */
  url: string;
}

const MERGE_GAP_BYTES = 64 * 1024;

/** The shard's runs of consecutive lines, [firstLine, lineCount, byteStart, byteEnd], in line order. */
export function shardRuns(shard: ShardJobData): LineRun[] {
  return shard.runs ?? [[shard.firstLine, shard.lineCount, shard.byteStart, shard.byteEnd]];
}

/** The shard's line indexes, in line order. */
export function shardLineIndexes(shard: ShardJobData): number[] {
  const out: number[] = [];
  for (const [first, count] of shardRuns(shard)) for (let i = 0; i < count; i++) out.push(first + i);
  return out;
}

/** Which of the shard's lines are done, in shard line order (one bitmap read over its envelope). */
export async function shardDoneLines(store: JobStore, shard: ShardJobData): Promise<boolean[]> {
  const lines = shardLineIndexes(shard);
  if (lines.length === 0) return [];
  const first = lines[0]!;
  const span = await store.doneLines(shard.batchId, first, lines[lines.length - 1]! - first + 1);
  return lines.map((l) => span[l - first]!);
}

/** Lines of `runs` read from `key`, in line order; `parse` turns a raw line into the value kept. */
export async function readRuns<T>(objects: ObjectStore, key: string, runs: readonly LineRun[], parse: (raw: string, lineIndex: number) => T): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < runs.length; ) {
    // One range for runs i..j-1 (gaps between them below MERGE_GAP_BYTES).
    let j = i + 1;
    while (j < runs.length && runs[j]![2] - runs[j - 1]![3] < MERGE_GAP_BYTES) j++;
    const wanted = new Set<number>();
    for (let r = i; r < j; r++) for (let k = 0; k < runs[r]![1]; k++) wanted.add(runs[r]![0] + k);
    const text = (await objects.getRange(key, runs[i]![2], runs[j - 1]![3])).toString("utf8");
    let lineIndex = runs[i]![0];
    for (const raw of text.split("\n")) {
      if (raw.trim() === "") continue;
      if (wanted.has(lineIndex)) out.push(parse(raw, lineIndex));
      lineIndex++;
    }
    i = j;
  }
  return out;
}

/**
 * The shard's lines, except those `skip` names (lines already done — among them the
 * invalid lines a skip_invalid_lines batch left out, which are not parsed at all).
 */
export async function readShardLines(objects: ObjectStore, shard: ShardJobData, skip: (lineIndex: number) => boolean = () => false): Promise<ShardLine[]> {
  const read = await readRuns(objects, shard.inputKey, shardRuns(shard), (raw, lineIndex): ShardLine | null => {
    if (skip(lineIndex)) return null;
    const obj = JSON.parse(raw) as { custom_id: string; url: string; body: unknown };
    return { lineIndex, customId: obj.custom_id, bodyJson: JSON.stringify(obj.body), url: obj.url };
  });
  const out = read.filter((l): l is ShardLine => l !== null);
  if (read.length !== shard.lineCount) {
    throw new Error(`shard ${shard.batchId}#${shard.shard}: read ${read.length} lines, expected ${shard.lineCount}`);
  }
  return out;
}
