// The sample batch `batchgen up` writes into its data folder, for the model it serves,
// so the submit command its banner prints works from any folder.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

// Short questions as completions ("Question: ...\nAnswer:", cut at the newline): the
// real default model is a pretrained one, which answers these and has no chat template.
const QUESTIONS = [
  "What is the capital of France?", "What is the capital of Japan?", "What is 2 + 3?", "What is 10 + 5?",
  "What colour is the sky on a clear day?", "What colour is blood?", "What is the largest planet in the solar system?",
  "What is the opposite of hot?", "What do bees make?", "What is the capital of Spain?",
];

/** JSONL: one completion request per question (custom_id request-1 ...). */
export function sampleBatch(model: string): string {
  return QUESTIONS.map((question, i) =>
    JSON.stringify({
      custom_id: `request-${i + 1}`,
      method: "POST",
      url: "/v1/completions",
      body: { model, prompt: `Question: ${question}\nAnswer:`, max_tokens: 24, temperature: 0, stop: ["\n"] },
    }),
  ).join("\n") + "\n";
}

/** Writes <dataDir>/sample-batch.jsonl for `model` (replacing an older one); returns its path. */
export async function writeSampleBatch(dataDir: string, model: string): Promise<string> {
  const path = join(dataDir, "sample-batch.jsonl");
  await writeFile(path, sampleBatch(model));
  return path;
}
