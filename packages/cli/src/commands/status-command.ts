// batchgen status ID [--json]
import { Command } from "commander";
import { formatBatch } from "../batch-format.js";
import { clientFrom, withClientOptions, type ClientFlags } from "../client-options.js";
import type { Output } from "../output.js";

export function statusCommand(out: Output): Command {
  return withClientOptions(
    new Command("status").description("show a batch: status, counts, progress, files").argument("<batch-id>").option("--json", "print the batch object as JSON"),
  ).action(async (id: string, flags: ClientFlags & { json?: boolean }) => {
    const batch = await clientFrom(flags).getBatch(id);
    out.result(flags.json ? JSON.stringify(batch, null, 2) : formatBatch(batch));
  });
}
