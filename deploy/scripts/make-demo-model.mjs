// Writes the random-weight demo model once, for the compose stack's CPU worker:
//   node deploy/scripts/make-demo-model.mjs /models/demo [preset]
// Runs in the worker image, where the engine package is built at /app/packages/engine.
import { existsSync } from "node:fs";
import { join } from "node:path";

const [dir, preset = "tiny-gemma"] = process.argv.slice(2);
if (!dir) {
  console.error("usage: make-demo-model.mjs DIR [preset]");
  process.exit(2);
}
if (existsSync(join(dir, "config.json"))) {
  console.log(`model already at ${dir}`);
} else {
  const { makeModel } = await import("/app/packages/engine/dist/make-model.js");
  const made = await makeModel({ dir, preset, seed: 0 });
  console.log(`wrote ${made.preset} (${made.architecture}, ${made.dtype}) to ${made.dir}`);
}
