#!/usr/bin/env node
// `pnpm install-cli`: puts `batchgen` on the PATH. Packs the command line into one npm
// package with no dependencies to fetch — the bundled JavaScript (scripts/bundle-programs.mjs),
// the native engine addon this checkout built, the Lua scripts and the demo model's
// tokenizer — and installs it with `npm install -g`, so it runs from any folder, without
// this checkout.
//
//   node scripts/install-cli.mjs [--pack-only] [--out DIR] [npm install flags, e.g. --prefix DIR]
//
// --pack-only writes the tarball (default into ./dist-cli/) and stops. Run `pnpm build`
// first. The addon is the one built here, so the package runs on machines like this one
// (same OS, CPU architecture, and — if this build found nvcc — CUDA libraries).
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { bundlePrograms, ROOT } from "./bundle-programs.mjs";

const args = process.argv.slice(2);
let outDir = join(ROOT, "dist-cli");
let packOnly = false;
const npmArgs = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--pack-only") packOnly = true;
  else if (args[i] === "--out") outDir = resolve(args[++i] ?? "");
  else npmArgs.push(args[i]);
}

function fail(message) {
  console.error(`install-cli: ${message}`);
  process.exit(1);
}

const addon = join(ROOT, "packages/engine/build/Release/batchgen_engine.node");
if (!existsSync(addon)) fail("the native engine is not built: run `pnpm install && pnpm build` first.");
const cli = JSON.parse(readFileSync(join(ROOT, "packages/cli/package.json"), "utf8"));
const root = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));

const stage = mkdtempSync(join(tmpdir(), "bg-cli-pack-"));
try {
  const pkg = join(stage, "batchgen");
  try {
    await bundlePrograms({ batchgen: "packages/cli/dist/main.js" }, pkg, { shebang: true });
  } catch (err) {
    fail(err.message);
  }
  copyFileSync(addon, join(pkg, "batchgen_engine.node"));
  copyFileSync(join(ROOT, "packages/cli/README.md"), join(pkg, "README.md"));
  writeFileSync(
    join(pkg, "package.json"),
    JSON.stringify(
      {
        name: "batchgen",
        version: cli.version,
        description: "batchgen: OpenAI-compatible batch generation (coordinator, worker, CLI) in one package",
        type: "module",
        bin: { batchgen: "batchgen.mjs" },
        engines: root.engines,
        files: ["batchgen.mjs", "prompt-thread.mjs", "batchgen_engine.node", "lua", "console", "tokenizer-gemma3", "README.md"],
      },
      null,
      2,
    ) + "\n",
  );
  mkdirSync(outDir, { recursive: true });
  const pack = spawnSync("npm", ["pack", "--silent", "--pack-destination", outDir], { cwd: pkg, encoding: "utf8" });
  if (pack.status !== 0) fail(`npm pack failed:\n${pack.stderr}`);
  const tarball = join(outDir, pack.stdout.trim().split("\n").pop());
  console.log(`install-cli: packed ${tarball}`);
  if (!packOnly) {
    const install = spawnSync("npm", ["install", "-g", "--no-audit", "--no-fund", ...npmArgs, tarball], { stdio: "inherit" });
    if (install.status !== 0) fail("npm install -g failed (above)");
    const prefix = spawnSync("npm", ["prefix", "-g", ...npmArgs], { encoding: "utf8" }).stdout.trim();
    console.log(`install-cli: installed; batchgen is ${join(prefix, "bin", "batchgen")} (that folder must be on your PATH)`);
  }
} finally {
  rmSync(stage, { recursive: true, force: true });
}
