// Polls a batch until it reaches a final status (completed, failed, expired, cancelled).
import type { ApiClient, Batch } from "./api-client.js";
import { isTerminal } from "./batch-format.js";
import { CliError } from "./cli-error.js";

export async function waitForBatch(client: ApiClient, id: string, opts: { pollMs?: number; onUpdate?: (b: Batch) => void; signal?: AbortSignal } = {}): Promise<Batch> {
  const pollMs = opts.pollMs ?? 1_000;
  let failures = 0;
  for (;;) {
    let batch: Batch;
    try {
      batch = await client.getBatch(id);
      failures = 0;
    } catch (err) {
      // A coordinator restart (or a replica going away) should not end the wait at once.
      if (!(err instanceof CliError) || !err.message.startsWith("cannot reach") || ++failures > 10) throw err;
      await sleep(pollMs * 2, opts.signal);
      continue;
    }
    opts.onUpdate?.(batch);
    if (isTerminal(batch.status)) return batch;
    await sleep(pollMs, opts.signal);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new CliError("stopped waiting"));
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      reject(new CliError("stopped waiting"));
    });
  });
}
