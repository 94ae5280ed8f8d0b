// The `batchgen` binary end to end: `up` (own redis-server, demo model made on first
// use, coordinator + CPU worker), then submit --wait, status, list, download, cancel,
// and the errors a user can run into — each one line, never a stack trace.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ScriptedWorker } from "../../coordinator/test/support/scripted-worker.js";
import { freePort } from "../src/free-port.js";
import { runBatchgen, startBatchgen } from "./support/run-batchgen.js";

let dir: string;
let up: Awaited<ReturnType<typeof startBatchgen>>;
let url: string;
let env: NodeJS.ProcessEnv;
const API_KEY = "sk-cli-test";

const chatLine = (i: number, extra: object = {}) => ({
  custom_id: `q-${i}`,
  method: "POST",
  url: "/v1/chat/completions",
  body: { model: "tiny-gemma", messages: [{ role: "user", content: `Say something about ${i}.` }], max_tokens: 4, temperature: 0, ...extra },
});

async function writeJsonl(name: string, lines: object[]): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
  return path;
}

function expectNoStack(text: string): void {
  expect(text).not.toMatch(/^\s+at .+\(.+:\d+:\d+\)$/m);
  expect(text).not.toMatch(/node:internal/);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "bg-cli-"));
  const { REDIS_URL: _ignored, ...rest } = process.env;
  // No REDIS_URL: `up` starts its own redis-server. XDG_CACHE_HOME: the demo model is made
  // fresh. --random-model: this file tests the pipeline, not the real model (e2e-real-model.test.ts).
  up = await startBatchgen(
    ["up", "--port", "0", "--data-dir", join(dir, "data"), "--api-key", API_KEY, "--threads", "1", "--max-seqs", "8", "--random-model"],
    { ...rest, REDIS_URL: "", XDG_CACHE_HOME: join(dir, "cache"), BATCHGEN_API_KEY: "" },
    /Stop with Ctrl-C/,
  );
  url = /API\s+(http:\/\/\S+)\/v1/.exec(up.stdout())![1]!;
  env = { BATCHGEN_URL: url, BATCHGEN_API_KEY: API_KEY };
});

afterAll(async () => {
  if (up && up.child.exitCode === null) {
    up.child.kill("SIGKILL");
  }
  await rm(dir, { recursive: true, force: true });
});

describe("batchgen", () => {
  it("up prints the API address and key, and starts its own Redis and the demo model", () => {
    const out = up.stdout();
    expect(out).toContain(`API key  ${API_KEY}`);
    expect(out).toMatch(/redis\s+redis:\/\/127\.0\.0\.1:\d+ \(started here\)/);
    expect(out).toContain(join(dir, "cache", "batchgen", "models", "tiny-gemma"));
    expect(up.stderr()).toContain("creating the random-weight demo model tiny-gemma");
    // It says plainly that this model is not the real one, and why.
    expect(out).toMatch(/model\s+tiny-gemma \(random weights: its answers are noise; /);
    expect(up.stderr()).toContain("the real model gemma-3-270m cannot be had (--random-model was given)");
  });

  it("up makes its worker port need a random token of this run: its own worker is in, a client without it gets UNAUTHENTICATED", async () => {
    const log = await readFile(join(dir, "data", "logs", "up.log"), "utf8");
    const started = log
      .split("\n")
      .filter((l) => l.includes('"coordinator started"'))
      .map((l) => JSON.parse(l) as { grpc_port: number })
      .at(-1)!;
    expect(log).not.toMatch(/insecure/i);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/^batchgen_coordinator_insecure_workers 0$/m);
    expect(metrics).toMatch(/^batchgen_coordinator_workers_connected\{model="tiny-gemma"\} 1$/m);
    for (const token of [undefined, "", "batchgen", "0".repeat(32)]) {
      const rogue = new ScriptedWorker({ address: `127.0.0.1:${started.grpc_port}`, model: "tiny-gemma", credit: 100, ...(token === undefined ? {} : { token }) });
      try {
        await expect(rogue.start()).rejects.toMatchObject({ code: 16 });
        expect(rogue.leases).toHaveLength(0);
      } finally {
        rogue.kill();
      }
    }
  });

  it("submit --wait shows progress, then downloads output.jsonl in input order", async () => {
    const input = await writeJsonl("six.jsonl", Array.from({ length: 6 }, (_, i) => chatLine(i)));
    const out = join(dir, "results");
    const r = await runBatchgen(["submit", input, "--wait", "--out", out, "--poll-ms", "200"], env);
    expect(r.stderr).toMatch(/created batch batch_\w+/);
    expect(r.stderr).toMatch(/completed: 6\/6 lines/);
    expect(r.stderr).toMatch(/completed: 6 ok, 0 failed of 6/);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(`output: ${join(out, "output.jsonl")}`);
    const lines = (await readFile(join(out, "output.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.map((l) => l.custom_id)).toEqual(["q-0", "q-1", "q-2", "q-3", "q-4", "q-5"]);
    for (const l of lines) {
      expect(l.response.status_code).toBe(200);
      expect(l.response.body.object).toBe("chat.completion");
      expect(l.response.body.usage.completion_tokens).toBeLessThanOrEqual(4);
    }
  });

  it("status, list and download work on a finished batch", async () => {
    const input = await writeJsonl("two.jsonl", [chatLine(10), chatLine(11)]);
    const submitted = await runBatchgen(["submit", input], env);
    expect(submitted.code).toBe(0);
    const id = submitted.stdout.trim();
    expect(id).toMatch(/^batch_\w+$/);

    let status = "";
    for (let i = 0; i < 300 && status !== "completed"; i++) {
      const r = await runBatchgen(["status", id, "--json"], env);
      expect(r.code).toBe(0);
      status = JSON.parse(r.stdout).status;
      if (status !== "completed") await new Promise((res) => setTimeout(res, 200));
    }
    expect(status).toBe("completed");

    const human = await runBatchgen(["status", id], env);
    expect(human.stdout).toMatch(new RegExp(`^id\\s+${id}$`, "m"));
    expect(human.stdout).toMatch(/^status\s+completed$/m);
    expect(human.stdout).toMatch(/^requests\s+2\/2 done \(2 ok, 0 failed\)$/m);

    const list = await runBatchgen(["list", "--limit", "50"], env);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^ID\s+STATUS\s+MODEL\s+DONE\s+CREATED$/m);
    expect(list.stdout).toMatch(new RegExp(`^${id}\\s+completed\\s+tiny-gemma\\s+2/2\\s`, "m"));

    const out = join(dir, "dl");
    const dl = await runBatchgen(["download", id, "--out", out], env);
    expect(dl.code).toBe(0);
    expect(dl.stdout.trim()).toBe(`output: ${join(out, "output.jsonl")}`);
    const lines = (await readFile(join(out, "output.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l).custom_id);
    expect(lines).toEqual(["q-10", "q-11"]);
  });

  it("cancel stops a running batch", async () => {
    const long = Array.from({ length: 12 }, (_, i) => chatLine(100 + i, { max_tokens: 3000, temperature: 1, seed: i }));
    const input = await writeJsonl("long.jsonl", long);
    const id = (await runBatchgen(["submit", input], env)).stdout.trim();
    const r = await runBatchgen(["cancel", id], env);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(new RegExp(`^${id} (cancelling|cancelled)$`));
    let batch: { status: string; request_counts: { completed: number } } = { status: "", request_counts: { completed: 0 } };
    for (let i = 0; i < 300 && batch.status !== "cancelled"; i++) {
      batch = JSON.parse((await runBatchgen(["status", id, "--json"], env)).stdout);
      if (batch.status !== "cancelled") await new Promise((res) => setTimeout(res, 200));
    }
    expect(batch.status).toBe("cancelled");
    expect(batch.request_counts.completed).toBeLessThan(12);
  });

  it("reports a file that fails validation with its line numbers", async () => {
    const input = await writeJsonl("bad.jsonl", [chatLine(1), { custom_id: "q-1", method: "POST", url: "/v1/chat/completions", body: { model: "tiny-gemma" } }]);
    const r = await runBatchgen(["submit", input, "--wait", "--poll-ms", "200"], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ {2}line 2: .+/m);
    expect(r.stderr).toMatch(/batchgen: batch batch_\w+ failed validation/);
    expectNoStack(r.stderr);
  });

  it("says clearly what is wrong: unknown id, wrong key, unreachable coordinator, missing file", async () => {
    const unknown = await runBatchgen(["status", "batch_doesnotexist"], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr.trim()).toBe("batchgen: No batch found with id 'batch_doesnotexist'.");

    const wrongKey = await runBatchgen(["list"], { ...env, BATCHGEN_API_KEY: "sk-wrong" });
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toMatch(/^batchgen: the coordinator refused the API key \(401: .+\)\. Pass --api-key or set BATCHGEN_API_KEY\.$/m);

    const nobody = await freePort();
    const unreachable = await runBatchgen(["list", "--url", `http://127.0.0.1:${nobody}`], env);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr.trim()).toBe(
      `batchgen: cannot reach the coordinator at http://127.0.0.1:${nobody} (ECONNREFUSED). Is it running (\`batchgen up\`)? Pass --url or set BATCHGEN_URL.`,
    );

    const missing = await runBatchgen(["submit", join(dir, "nope.jsonl")], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe(`batchgen: cannot read ${join(dir, "nope.jsonl")}: no such file.`);

    const notDone = await runBatchgen(["download", "batch_doesnotexist"], env);
    expect(notDone.stderr.trim()).toBe("batchgen: No batch found with id 'batch_doesnotexist'.");

    for (const r of [unknown, wrongKey, unreachable, missing, notDone]) expectNoStack(r.stderr);
  });

  it("up stops cleanly on SIGINT", async () => {
    const exited = new Promise<number | null>((resolve) => up.child.once("exit", (code) => resolve(code)));
    up.child.kill("SIGINT");
    expect(await exited).toBe(0);
    expect(up.stderr()).toContain("batchgen stopped");
  });
});

describe("batchgen up without Redis", () => {
  it("says how to get Redis when REDIS_URL is unset and no redis-server is installed", async () => {
    const d = await mkdtemp(join(tmpdir(), "bg-cli-noredis-"));
    try {
      const r = await runBatchgen(["up", "--port", "0", "--data-dir", d, "--model-dir", d], { REDIS_URL: "", PATH: join(d, "empty-path") });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^batchgen: batchgen up needs Redis, and no `redis-server` was found on PATH\. Install it .*apt-get install redis-server.* or set REDIS_URL/m);
      expectNoStack(r.stderr);
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });
});
