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

export async function readShardLines(objects: ObjectStore, shard: ShardJobData): Promise<ShardLine[]> {
  const text = (await objects.getRange(shard.inputKey, shard.byteStart, shard.byteEnd)).toString("utf8");
  const out: ShardLine[] = [];
  let lineIndex = shard.firstLine;
  for (const raw of text.split("\n")) {
    if (raw.trim() === "") continue;
    const obj = JSON.parse(raw) as { custom_id: string; url: string; body: unknown };
    out.push({ lineIndex: lineIndex++, customId: obj.custom_id, bodyJson: JSON.stringify(obj.body), url: obj.url });
  }
  if (out.length !== shard.lineCount) {
    throw new Error(`shard ${shard.batchId}#${shard.shard}: read ${out.length} lines, expected ${shard.lineCount}`);
  }
  return out;
}
