// batchgen submit FILE [--model M] [--endpoint E] [--wait] [--out DIR]
import { rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Command } from "commander";
import { formatBatchErrors } from "../batch-format.js";
import { CliError } from "../cli-error.js";
import { clientFrom, withClientOptions, type ClientFlags } from "../client-options.js";
import { downloadResults } from "../download-results.js";
import { checkReadable, firstLineEndpoint, withModel } from "../prepare-input.js";
import { createProgressView } from "../progress-view.js";
import { waitForBatch } from "../wait-for-batch.js";
import type { Output } from "../output.js";

const ENDPOINTS = ["/v1/chat/completions", "/v1/completions"];

interface SubmitFlags extends ClientFlags {
  model?: string;
  endpoint?: string;
  completionWindow: string;
  metadata?: string[];
  wait?: boolean;
  out?: string;
  pollMs: string;
}

export function submitCommand(out: Output): Command {
  return withClientOptions(
    new Command("submit")
      .description("upload a JSONL file of requests and create a batch")
      .argument("<file>", "JSONL input, one OpenAI batch request a line")
      .option("--model <name>", "run every line on this model (sets body.model of each line)")
      .option("--endpoint <path>", "/v1/chat/completions or /v1/completions (default: the url of the first line)")
      .option("--completion-window <window>", "completion window", "24h")
      .option("--metadata <key=value...>", "batch metadata")
      .option("--wait", "wait for the batch to finish, showing progress, then download its results")
      .option("--out <dir>", "where --wait puts output.jsonl and errors.jsonl (default ./batchgen-results/<batch id>)")
      .option("--poll-ms <ms>", "how often --wait asks for progress", "1000"),
  ).action(async (file: string, flags: SubmitFlags) => {
    const client = clientFrom(flags);
    await checkReadable(file);
    const endpoint = flags.endpoint ?? (await firstLineEndpoint(file)) ?? "/v1/chat/completions";
    if (!ENDPOINTS.includes(endpoint)) throw new CliError(`--endpoint must be one of ${ENDPOINTS.join(", ")}; got ${endpoint}.`);
    const metadata = parseMetadata(flags.metadata);

    const upload = flags.model ? await withModel(file, flags.model) : file;
    let fileObject;
    try {
      fileObject = await client.uploadFile(upload);
    } finally {
      if (upload !== file) await rm(dirname(upload), { recursive: true, force: true });
    }
    out.info(`uploaded ${file} as ${fileObject.id} (${fileObject.bytes} bytes)`);
    const created = await client.createBatch({ inputFileId: fileObject.id, endpoint, completionWindow: flags.completionWindow, ...(metadata ? { metadata } : {}) });
    out.info(`created batch ${created.id}`);
    if (!flags.wait) {
      out.result(created.id);
      return;
    }

    const view = createProgressView();
    let batch;
    try {
      batch = await waitForBatch(client, created.id, { pollMs: Number(flags.pollMs) || 1000, onUpdate: (b) => view.update(b) });
    } finally {
      view.stop();
    }
    const counts = batch.request_counts;
    out.info(`batch ${batch.id} ${batch.status}: ${counts.completed} ok, ${counts.failed} failed of ${counts.total}`);
    if (batch.status === "failed") {
      for (const line of formatBatchErrors(batch)) out.info(line);
      throw new CliError(`batch ${batch.id} failed validation; fix the lines above and submit again.`);
    }
    if (batch.output_file_id || batch.error_file_id) {
      const files = await downloadResults(client, batch, flags.out ?? join("batchgen-results", batch.id));
      if (files.output) out.result(`output: ${files.output}`);
      if (files.errors) out.result(`errors: ${files.errors}`);
    }
    if (batch.status !== "completed") throw new CliError(`batch ${batch.id} ended ${batch.status}.`);
  });
}

function parseMetadata(pairs: string[] | undefined): Record<string, string> | undefined {
  if (!pairs || pairs.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf("=");
    if (at <= 0) throw new CliError(`--metadata takes key=value pairs; got ${JSON.stringify(pair)}.`);
    out[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return out;
}
