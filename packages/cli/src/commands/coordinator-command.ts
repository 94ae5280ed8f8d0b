// batchgen coordinator [flags]: one coordinator replica. Every setting has a flag and an
// environment variable BATCHGEN_<NAME> (REDIS_URL is read when BATCHGEN_REDIS_URL is unset).
import { toEnvName, toFlagName } from "@batchgen/core";
import { COORDINATOR_SWITCHES, coordinatorConfigSchema, createCoordinator, loadCoordinatorConfig } from "@batchgen/coordinator";
import { Command } from "commander";
import type { Output } from "../output.js";

export function coordinatorCommand(out: Output): Command {
  const cmd = new Command("coordinator").description("run one coordinator replica (HTTP API, gRPC for workers, /metrics)");
  for (const key of Object.keys(coordinatorConfigSchema.shape)) {
    // A switch stands alone (--insecure-workers) or takes true/false.
    const value = (COORDINATOR_SWITCHES as readonly string[]).includes(key) ? "[bool]" : "<value>";
    cmd.option(`${toFlagName([key])} ${value}`, `[BATCHGEN_${toEnvName(key)}]`);
  }
  return cmd.action(async (flags: Record<string, unknown>) => {
    const env = { ...process.env };
    if (env.BATCHGEN_REDIS_URL === undefined && env.REDIS_URL) env.BATCHGEN_REDIS_URL = env.REDIS_URL;
    const coordinator = createCoordinator(loadCoordinatorConfig(flags, env));
    await coordinator.start();
    out.info(`coordinator: HTTP on port ${coordinator.httpPort}, gRPC on port ${coordinator.grpcPort}`);
    await new Promise<void>((resolve) => {
      const stop = () => void coordinator.stop().then(resolve, resolve);
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
  });
}
