// The web console (packages/console, built to static files) at /console: served without
// authentication, as plain files; the page itself asks for an API key and reads the
// public API with it, like any client.
import { readFile } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

// packages/console/dist beside this package in the workspace (bundles rewrite this).
const CONSOLE_DIR = fileURLToPath(new URL("../../../console/dist/", import.meta.url));

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

export function isConsolePath(path: string): boolean {
  return path === "/console" || path.startsWith("/console/");
}

/** Serves a console file (index.html for /console); false when there is no such file. */
export async function serveConsole(path: string, res: ServerResponse, dir: string = process.env.BATCHGEN_CONSOLE_DIR ?? CONSOLE_DIR): Promise<boolean> {
  const rel = path === "/console" ? "index.html" : path.slice("/console/".length) || "index.html";
  const file = normalize(join(dir, rel));
  if (!file.startsWith(normalize(dir)) || !(extname(file) in TYPES)) return false;
  let body: Buffer;
  try {
    body = await readFile(file);
  } catch {
    if (rel === "index.html") {
      res.writeHead(503, { "content-type": "text/plain" }).end("the console is not built: run `pnpm build`\n");
      return true;
    }
    return false;
  }
  res.writeHead(200, { "content-type": TYPES[extname(file)]!, "cache-control": "no-cache", "content-length": body.length });
  res.end(body);
  return true;
}
