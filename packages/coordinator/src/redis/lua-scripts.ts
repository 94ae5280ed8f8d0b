// The coordinator's own Lua scripts (lua/*.lua; each file's header says its KEYS, ARGV
// and return codes), read once and registered as ioredis commands.
import { readFileSync } from "node:fs";
import type { Redis } from "ioredis";

const LUA_DIR = new URL("../../lua/", import.meta.url);

const SCRIPTS = {
  markLinesDone: { file: "mark-lines-done.lua", keys: 3 },
  transitionBatch: { file: "transition-batch.lua", keys: 4 },
  releaseLock: { file: "release-lock.lua", keys: 1 },
  renewLock: { file: "renew-lock.lua", keys: 1 },
  deleteFile: { file: "delete-file.lua", keys: 6 },
  createBatch: { file: "create-batch.lua", keys: 6 },
  claimWebhooks: { file: "claim-webhooks.lua", keys: 1 },
  recordShardFailure: { file: "record-shard-failure.lua", keys: 1 },
} as const;

export type ScriptName = keyof typeof SCRIPTS;

export function defineScripts(redis: Redis): void {
  for (const [name, { file, keys }] of Object.entries(SCRIPTS)) {
    redis.defineCommand(name, { numberOfKeys: keys, lua: readFileSync(new URL(file, LUA_DIR), "utf8") });
  }
}

/** Run a script defined by defineScripts. */
export function runScript(redis: Redis, name: ScriptName, keys: string[], args: Array<string | number>): Promise<unknown> {
  const fn = (redis as unknown as Record<string, (...a: Array<string | number>) => Promise<unknown>>)[name];
  if (!fn) throw new Error(`lua script ${name} is not defined`);
  return fn.call(redis, ...keys, ...args);
}
