// Where `batchgen up` keeps things and what the client commands assume when nothing is
// set: the address and key `batchgen up` uses by default, so the two meet.
import { homedir } from "node:os";
import { join } from "node:path";

export const DEFAULT_URL = "http://127.0.0.1:8080";
export const DEFAULT_API_KEY = "sk-batchgen-local";
export const DEMO_MODEL = "tiny-gemma";

/** Batches, results and Redis data of `batchgen up`: $BATCHGEN_HOME, else $XDG_DATA_HOME/batchgen, else ~/.local/share/batchgen. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.BATCHGEN_HOME) return env.BATCHGEN_HOME;
  return join(env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "batchgen");
}

/** Generated models: $XDG_CACHE_HOME/batchgen, else ~/.cache/batchgen. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "batchgen");
}
