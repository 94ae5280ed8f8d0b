// Issue #9, "no silent errors": every promise error the coordinator or the worker drops on
// purpose says why beside it (a comment on the line or just above it); the others go
// through SwallowedErrors (logged and counted) or a logger. A new bare
// `.catch(() => undefined)` fails here, naming the file and line.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..");
const PACKAGES = ["coordinator", "worker"];
// A handler that ignores its error: () => undefined, () => {}, () => null, () => void 0.
const DROPS = /\.catch\(\s*\(\s*\)\s*=>\s*(undefined|\{\s*\}|null|void 0)\s*\)/;

function sources(pkg: string): string[] {
  const src = join(ROOT, "packages", pkg, "src");
  return (readdirSync(src, { recursive: true }) as string[]).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts")).map((f) => join(src, f));
}

describe("swallowed promise errors in the coordinator and the worker", () => {
  it("each one states its reason beside it", () => {
    const unexplained: string[] = [];
    let drops = 0;
    for (const pkg of PACKAGES) {
      for (const file of sources(pkg)) {
        const lines = readFileSync(file, "utf8").split("\n");
        lines.forEach((line, i) => {
          if (!DROPS.test(line)) return;
          drops++;
          // A comment above a run of such lines covers the run.
          let above = i - 1;
          while (above >= 0 && DROPS.test(lines[above]!)) above--;
          const reason = line.includes("//") || /^\s*\/\/|\*\/\s*$/.test(lines[above] ?? "");
          if (!reason) unexplained.push(`${file.slice(ROOT.length + 1)}:${i + 1}: ${line.trim()}`);
        });
      }
    }
    // The scan sees the deliberate ones (shutdown, an upload given up), so it is looking.
    expect(drops).toBeGreaterThan(0);
    expect(unexplained).toEqual([]);
  });
});
