#!/usr/bin/env node
// batchgen-worker: one worker process. Every flag has an environment variable
// (BATCHGEN_WORKER_<NAME>, e.g. --model-dir / BATCHGEN_WORKER_MODEL_DIR); flags win.
import { parseArgs } from "node:util";
import { loadWorkerConfig } from "./worker-config.js";
import { runWorkerProcess } from "./run-worker.js";
import { workerFlagHelp, workerFlagOptions } from "./worker-flags.js";

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { ...workerFlagOptions, help: { type: "boolean", short: "h" } }, strict: true });
  if (values.help) {
    process.stdout.write(`usage: batchgen-worker [options]\n\n${workerFlagHelp()}\n`);
    return;
  }
  const flags: Record<string, unknown> = {};
  for (const [flag, value] of Object.entries(values)) if (flag !== "help" && value !== undefined) flags[camel(flag)] = value;
  const config = loadWorkerConfig({ env: process.env, flags });
  await runWorkerProcess(config);
}

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

main().catch((err: unknown) => {
  process.stderr.write(`batchgen-worker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
