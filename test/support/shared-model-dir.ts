// A test model made once per machine into the OS temp folder and then reused by
// every test file and run: the first maker writes a private folder and renames it
// into place, so a reader never sees a half-written model.
import { existsSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * The folder `batchgen-test-models/<name>` in the OS temp folder (its config.json marks
 * it made); `make(dir)` fills a private folder only when no run has made it yet.
 */
export async function sharedModelDir(name: string, make: (dir: string) => Promise<unknown>): Promise<string> {
  const dir = join(tmpdir(), "batchgen-test-models", name);
  if (existsSync(join(dir, "config.json"))) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await make(tmp);
  await rename(tmp, dir).catch(async (err: NodeJS.ErrnoException) => {
    // Another test file made it meanwhile.
    await rm(tmp, { recursive: true, force: true });
    if (!existsSync(join(dir, "config.json"))) throw err;
  });
  return dir;
}
