#!/usr/bin/env node
// `node dist/main.js [--flag value ...]`: one coordinator replica until SIGINT/SIGTERM.
// Settings come from flags, then BATCHGEN_* environment variables, then defaults
// (REDIS_URL is read when BATCHGEN_REDIS_URL is unset).
import { toFlagName, toEnvName, toOpenAIErrorBody } from "@batchgen/core";
import { createCoordinator } from "./coordinator.js";
import { COORDINATOR_SWITCHES, coordinatorConfigSchema, loadCoordinatorConfig } from "./coordinator-config.js";
import { parseFlags } from "./parse-flags.js";

function usage(): string {
  const lines = ["usage: batchgen-coordinator [flags]", "", "flags (environment variable in brackets):"];
  for (const key of Object.keys(coordinatorConfigSchema.shape)) {
    const value = (COORDINATOR_SWITCHES as readonly string[]).includes(key) ? "" : " <value>";
    lines.push(`  ${(toFlagName([key]) + value).padEnd(34)} [BATCHGEN_${toEnvName(key)}]`);
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  const { flags, help } = parseFlags(process.argv.slice(2), Object.keys(coordinatorConfigSchema.shape), COORDINATOR_SWITCHES);
  if (help) {
    process.stdout.write(usage() + "\n");
    return;
  }
  const env = { ...process.env };
  if (env.BATCHGEN_REDIS_URL === undefined && env.REDIS_URL) env.BATCHGEN_REDIS_URL = env.REDIS_URL;
  const config = loadCoordinatorConfig(flags, env);
  const coordinator = createCoordinator(config);
  await coordinator.start();
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    coordinator.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`batchgen-coordinator: ${toOpenAIErrorBody(err).error.message}\n`);
  process.exit(1);
});
