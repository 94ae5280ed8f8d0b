// batchgen cancel ID
import { Command } from "commander";
import { clientFrom, withClientOptions, type ClientFlags } from "../client-options.js";
import type { Output } from "../output.js";

export function cancelCommand(out: Output): Command {
  return withClientOptions(
    new Command("cancel").description("cancel a batch; lines already finished stay in its output").argument("<batch-id>"),
  ).action(async (id: string, flags: ClientFlags) => {
    const batch = await clientFrom(flags).cancelBatch(id);
    out.result(`${batch.id} ${batch.status}`);
  });
}
