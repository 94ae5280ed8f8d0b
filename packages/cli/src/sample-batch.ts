// The sample batch `batchgen up` writes into its data folder, for the model it serves,
// so the submit command its banner prints works from any folder.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

const TOPICS = [
  "the ocean", "a lighthouse keeper", "prime numbers", "autumn rain", "a city at night",
  "the first snow", "a cup of tea", "an old library", "mountain trails", "a train station",
];

/** JSONL: one chat request per topic (custom_id request-1 ...). */
export function sampleBatch(model: string): string {
  return TOPICS.map((topic, i) =>
    JSON.stringify({
      custom_id: `request-${i + 1}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: { model, messages: [{ role: "user", content: `Write a haiku about ${topic}.` }], max_tokens: 24, temperature: 0 },
    }),
  ).join("\n") + "\n";
}

/** Writes <dataDir>/sample-batch.jsonl for `model` (replacing an older one); returns its path. */
export async function writeSampleBatch(dataDir: string, model: string): Promise<string> {
  const path = join(dataDir, "sample-batch.jsonl");
  await writeFile(path, sampleBatch(model));
  return path;
}
