// The `batchgen` command line: every subcommand, and one place that turns any failure
// into a one-line message and an exit code (never a stack trace).
import { isBatchgenError } from "@batchgen/core";
import { Command, CommanderError } from "commander";
import { CliError } from "./cli-error.js";
import { cancelCommand } from "./commands/cancel-command.js";
import { coordinatorCommand } from "./commands/coordinator-command.js";
import { downloadCommand } from "./commands/download-command.js";
import { inspectModelCommand } from "./commands/inspect-model-command.js";
import { listCommand } from "./commands/list-command.js";
import { makeModelCommand } from "./commands/make-model-command.js";
import { statusCommand } from "./commands/status-command.js";
import { submitCommand } from "./commands/submit-command.js";
import { upCommand } from "./commands/up-command.js";
import { workerCommand } from "./commands/worker-command.js";
import { consoleOutput, type Output } from "./output.js";

export function buildProgram(out: Output = consoleOutput): Command {
  const program = new Command("batchgen")
    .description("OpenAI-compatible batch generation: run it locally (up), submit files, follow and fetch batches")
    .version("0.1.0")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  for (const cmd of [
    upCommand(out),
    submitCommand(out),
    statusCommand(out),
    listCommand(out),
    cancelCommand(out),
    downloadCommand(out),
    coordinatorCommand(out),
    workerCommand(),
    makeModelCommand(out),
    inspectModelCommand(out),
  ]) {
    program.addCommand(cmd.exitOverride());
  }
  return program;
}

/** Runs the command line; resolves with the exit code. */
export async function runCli(argv: string[], out: Output = consoleOutput): Promise<number> {
  try {
    await buildProgram(out).parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode; // commander printed the message (or help)
    out.info(`batchgen: ${describe(err)}`);
    return err instanceof CliError ? err.exitCode : 1;
  }
}

function describe(err: unknown): string {
  if (err instanceof CliError || isBatchgenError(err)) return err.message;
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}
