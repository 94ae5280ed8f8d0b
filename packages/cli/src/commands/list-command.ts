// batchgen list [--limit N] [--after ID] [--json]
import { Command } from "commander";
import { formatBatchTable } from "../batch-format.js";
import { CliError } from "../cli-error.js";
import { clientFrom, withClientOptions, type ClientFlags } from "../client-options.js";
import type { Output } from "../output.js";

export function listCommand(out: Output): Command {
  return withClientOptions(
    new Command("list")
      .description("list your batches, newest first")
      .option("--limit <n>", "how many", "20")
      .option("--after <batch-id>", "start after this batch (paging)")
      .option("--json", "print the list object as JSON"),
  ).action(async (flags: ClientFlags & { limit: string; after?: string; json?: boolean }) => {
    const limit = Number(flags.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new CliError(`--limit must be an integer from 1 to 100; got ${flags.limit}.`);
    const list = await clientFrom(flags).listBatches({ limit, ...(flags.after ? { after: flags.after } : {}) });
    if (flags.json) {
      out.result(JSON.stringify(list, null, 2));
      return;
    }
    out.result(formatBatchTable(list.data));
    if (list.has_more && list.last_id) out.info(`more: batchgen list --after ${list.last_id}`);
  });
}
