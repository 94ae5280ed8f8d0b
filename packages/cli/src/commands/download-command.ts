// batchgen download ID [--out DIR]
import { join } from "node:path";
import { Command } from "commander";
import { clientFrom, withClientOptions, type ClientFlags } from "../client-options.js";
import { downloadResults } from "../download-results.js";
import type { Output } from "../output.js";

export function downloadCommand(out: Output): Command {
  return withClientOptions(
    new Command("download")
      .description("download a finished batch's output.jsonl and errors.jsonl")
      .argument("<batch-id>")
      .option("--out <dir>", "folder to write to (default ./batchgen-results/<batch id>)"),
  ).action(async (id: string, flags: ClientFlags & { out?: string }) => {
    const client = clientFrom(flags);
    const batch = await client.getBatch(id);
    const files = await downloadResults(client, batch, flags.out ?? join("batchgen-results", batch.id));
    if (files.output) out.result(`output: ${files.output}`);
    if (files.errors) out.result(`errors: ${files.errors}`);
  });
}
