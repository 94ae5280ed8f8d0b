// batchgen worker [flags]: one worker process (engine + gRPC session). Flags and
// BATCHGEN_WORKER_<NAME> environment variables; SIGTERM drains.
import { loadWorkerConfig, runWorkerProcess, workerFlags, workerFlagSpec } from "@batchgen/worker";
import { Command } from "commander";

export function workerCommand(): Command {
  const cmd = new Command("worker").description("run one worker: load a model, connect to a coordinator, serve its leases");
  for (const f of workerFlags) {
    const help = `${f.help} [BATCHGEN_WORKER_${f.flag.toUpperCase().replace(/-/g, "_")}]`;
    if (f.multiple) cmd.option(workerFlagSpec(f), help, (v: string, prev: string[] = []) => [...prev, v]);
    else cmd.option(workerFlagSpec(f), help);
  }
  return cmd.action(async (flags: Record<string, unknown>) => {
    await runWorkerProcess(loadWorkerConfig({ env: process.env, flags }));
    await new Promise(() => {}); // runWorkerProcess exits the process when the worker stops
  });
}
