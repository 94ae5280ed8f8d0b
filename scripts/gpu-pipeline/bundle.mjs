#!/usr/bin/env node
// Bundles the pipeline's programs into single ESM files that run with a bare `node` and
// no node_modules (for a GPU machine with no npm registry); see scripts/bundle-programs.mjs
// for what is inlined, what stays outside (the native addon: BATCHGEN_ENGINE_ADDON or
// ./batchgen_engine.node beside the bundle) and the data files written beside them.
//
//   node scripts/gpu-pipeline/bundle.mjs OUT_DIR
//
// Writes OUT_DIR/{coordinator,worker,make-model,pipeline-tool}.mjs, lua/ and
// tokenizer-gemma3/. Run `pnpm build` first.
import { resolve } from "node:path";
import { bundlePrograms } from "../bundle-programs.mjs";

if (!process.argv[2]) {
  console.error("usage: bundle.mjs OUT_DIR");
  process.exit(2);
}
try {
  const sizes = await bundlePrograms(
    {
      coordinator: "packages/coordinator/dist/main.js",
      worker: "packages/worker/dist/main.js",
      "make-model": "packages/engine/dist/make-model-cli.js",
      "pipeline-tool": "scripts/gpu-pipeline/pipeline-tool.mjs",
    },
    resolve(process.argv[2]),
  );
  for (const [name, size] of Object.entries(sizes)) console.log(`bundle: ${name}.mjs ${(size / 1e6).toFixed(1)} MB`);
} catch (err) {
  console.error(`bundle: ${err.message}`);
  process.exit(1);
}
