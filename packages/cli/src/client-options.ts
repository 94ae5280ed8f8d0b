// --url and --api-key, shared by every command that talks to a coordinator.
import type { Command } from "commander";
import { ApiClient } from "./api-client.js";
import { DEFAULT_API_KEY, DEFAULT_URL } from "./defaults.js";

export interface ClientFlags {
  url?: string;
  apiKey?: string;
}

export function withClientOptions(cmd: Command): Command {
  return cmd
    .option("--url <url>", `coordinator HTTP address [BATCHGEN_URL, default ${DEFAULT_URL}]`)
    .option("--api-key <key>", "API key [BATCHGEN_API_KEY, default: the key `batchgen up` uses]");
}

export function clientFrom(flags: ClientFlags, env: NodeJS.ProcessEnv = process.env): ApiClient {
  return new ApiClient({
    baseUrl: flags.url ?? env.BATCHGEN_URL ?? DEFAULT_URL,
    apiKey: flags.apiKey ?? env.BATCHGEN_API_KEY ?? DEFAULT_API_KEY,
  });
}
