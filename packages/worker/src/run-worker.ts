// A worker as a process: start, drain on SIGTERM/SIGINT (a second signal stops at
// once), exit 0 once drained; a refused or broken worker exits 1 with one clear line.
import type { Logger } from "@batchgen/core";
import { createWorker, type Worker, type WorkerDeps } from "./worker.js";
import type { WorkerConfigInput } from "./worker-config.js";

export async function runWorkerProcess(input: WorkerConfigInput, deps: WorkerDeps & { logger?: Logger } = {}): Promise<Worker> {
  const worker = createWorker(input, deps);
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      process.stderr.write(`batchgen worker: second ${signal}, stopping now\n`);
      process.exit(1);
    }
    worker.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`batchgen worker: stopping failed: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  worker.closed.then(
    () => process.exit(0),
    (err: Error) => {
      process.stderr.write(`batchgen worker: ${err.message}\n`);
      process.exit(1);
    },
  );
  await worker.start();
  return worker;
}
