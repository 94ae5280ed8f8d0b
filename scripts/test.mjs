#!/usr/bin/env node
// The project's test command (`pnpm test`): the engine's C++ unit tests, then the
// whole vitest suite (unit specs, engine-vs-transformers checks, control plane
// against a real redis-server and s3rver, end-to-end). Ends with one line
// `N passed, N failed` summing both.
//
// Expects a built tree (`pnpm build`); the engine's C++ tests are built by the
// same cmake-js build as the addon. Extra arguments go to vitest (a path filter).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
let passed = 0;
let failed = 0;

// The reference the engine is checked against: Hugging Face transformers on CPU,
// in .venv (made here on first use) unless BATCHGEN_PYTHON names an interpreter.
function ensurePython() {
  if (process.env.BATCHGEN_PYTHON) return;
  const r = spawnSync("bash", [join(root, "scripts/setup-python.sh")], { stdio: "inherit" });
  if (r.status !== 0) {
    console.error("failed: scripts/setup-python.sh");
    console.log("\n0 passed, 1 failed");
    process.exit(1);
  }
  process.env.BATCHGEN_PYTHON = join(root, ".venv/bin/python");
}
ensurePython();

function findTestBinaries(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) {
      if (name === "CMakeFiles" || name === "src" || name === "numerics") continue;
      out.push(...findTestBinaries(p));
    } else if (/_test$/.test(name) && st.mode & 0o111) {
      out.push(p);
    }
  }
  return out;
}

// 1. C++ unit tests (each binary ends with its own `N passed, N failed` line).
if (args.length === 0) {
  const bins = findTestBinaries(join(root, "packages/engine/build"));
  if (bins.length === 0) {
    console.error("no engine C++ test binaries under packages/engine/build: run `pnpm build` first");
    failed += 1;
  }
  for (const bin of bins.sort()) {
    console.log(`\n=== ${bin.slice(root.length + 1)}`);
    const r = spawnSync(bin, [], { cwd: join(root, "packages/engine"), encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
    process.stdout.write(r.stdout ?? "");
    const m = /(\d+) passed, (\d+) failed\s*$/.exec((r.stdout ?? "").trim());
    if (m) {
      passed += Number(m[1]);
      failed += Number(m[2]);
      if (r.status !== 0 && Number(m[2]) === 0) failed += 1;
    } else {
      console.error(`${bin}: no summary line (exit ${r.status}, signal ${r.signal})`);
      failed += 1;
    }
  }
}

// 2. vitest (JSON report for the counts, default reporter for people).
const report = join(root, ".vitest-results.json");
rmSync(report, { force: true });
const vitest = spawnSync(
  "pnpm",
  ["exec", "vitest", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, ...args],
  { cwd: root, stdio: "inherit" },
);
if (existsSync(report)) {
  const r = JSON.parse(readFileSync(report, "utf8"));
  passed += r.numPassedTests ?? 0;
  failed += (r.numFailedTests ?? 0) + countFilesFailedWithoutTests(r);
  if ((r.numTotalTests ?? 0) === 0) failed += 1;
} else {
  console.error(`vitest wrote no report (exit ${vitest.status})`);
  failed += 1;
}
if (vitest.status !== 0 && failed === 0) failed += 1;

// A file that failed to load (or failed in a hook) has no failed tests of its own;
// count it once. (numFailedTestSuites counts describe blocks too, so it is not used.)
function countFilesFailedWithoutTests(r) {
  return (r.testResults ?? []).filter((s) => s.status === "failed" && !(s.assertionResults ?? []).some((a) => a.status === "failed")).length;
}

console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
