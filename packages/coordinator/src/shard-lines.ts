// The request lines of a shard, read back from the input file's byte range. Line indexes
// count request lines from 0 across the file (blank lines are skipped, as at ingest).
// Each line keeps its own url: in a mixed batch it may differ from the batch's endpoint.
import type { ObjectStore } from "@batchgen/core";
import type { ShardJobData } from "./job-store.js";

export interface ShardLine {
  lineIndex: number;
  customId: string;
  bodyJson: string;
  /** The line's endpoint (validated at ingest). */
  url: string;
}

/**
 * The shard's lines, except those `skip` names (lines already done — among them the
 * invalid lines a skip_invalid_lines batch left out, which are not parsed at all).
 */
export async function readShardLines(objects: ObjectStore, shard: ShardJobData, skip: (lineIndex: number) => boolean = () => false): Promise<ShardLine[]> {
  const text = (await objects.getRange(shard.inputKey, shard.byteStart, shard.byteEnd)).toString("utf8");
  const out: ShardLine[] = [];
  let lineIndex = shard.firstLine;
  let skipped = 0;
  for (const raw of text.split("\n")) {
    if (raw.trim() === "") continue;
    if (skip(lineIndex)) {
      lineIndex++;
      skipped++;
      continue;
    }
    const obj = JSON.parse(raw) as { custom_id: string; url: string; body: unknown };
    out.push({ lineIndex: lineIndex++, customId: obj.custom_id, bodyJson: JSON.stringify(obj.body), url: obj.url });
  }
  if (out.length + skipped !== shard.lineCount) {
    throw new Error(`shard ${shard.batchId}#${shard.shard}: read ${out.length + skipped} lines, expected ${shard.lineCount}`);
  }
  return out;
}
