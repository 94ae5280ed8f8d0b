// Builds the console into dist/: console.js (src/console.ts and what it imports, one
// minified browser bundle, no run-time dependencies), index.html and console.css.
// The coordinator serves dist/ at /console (packages/coordinator/src/http/console-routes.ts).
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
await build({
  entryPoints: [join(here, "src", "console.ts")],
  outfile: join(dist, "console.js"),
  bundle: true,
  platform: "browser",
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "none",
  logLevel: "warning",
});
for (const f of ["index.html", "console.css"]) copyFileSync(join(here, "src", f), join(dist, f));
