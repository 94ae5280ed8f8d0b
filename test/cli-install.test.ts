// The README's install step as a user runs it, into a temporary npm prefix: `pnpm
// install-cli` (scripts/install-cli.mjs: bundle, pack, npm install -g). Then, from
// folders outside the checkout, with only that prefix's bin/ added to PATH: `batchgen
// --help`, `batchgen up`, the submit command its banner prints (run through a shell
// exactly as printed), and the client commands the README shows. Last, the README's SDK
// snippet, cut out of README.md, runs against that coordinator with the `openai` the
// repository root installs.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const README = readFileSync(join(ROOT, "README.md"), "utf8");

let dir: string;
let prefix: string;
let env: NodeJS.ProcessEnv;
let upChild: ChildProcess | undefined;
let upErr = "";
let banner = "";

function sh(command: string, cwd: string, extraEnv: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn("bash", ["-c", command], { cwd, env: { ...env, ...extraEnv } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${command} timed out\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** The fenced code block that follows (or, with `before`, precedes) `marker` in the README. */
function readmeBlock(marker: string, lang: string, before = false): string {
  const at = README.indexOf(marker);
  expect(at, `README has "${marker}"`).toBeGreaterThan(-1);
  const blocks = [...(before ? README.slice(0, at) : README.slice(at)).matchAll(new RegExp("```" + lang + "\\n([\\s\\S]*?)```", "g"))];
  const m = before ? blocks.at(-1) : blocks[0];
  expect(m, `a \`\`\`${lang} block near "${marker}"`).toBeDefined();
  return m![1]!;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bg-install-"));
  prefix = join(dir, "prefix");
  // The install step as the README prints it, plus npm's own --prefix flag.
  expect(README).toContain("pnpm install-cli");
  const install = spawnSync("pnpm", ["install-cli", "--out", join(dir, "pack"), "--prefix", prefix], { cwd: ROOT, encoding: "utf8" });
  expect(install.status, `${install.stdout}\n${install.stderr}`).toBe(0);
  expect(existsSync(join(prefix, "bin", "batchgen"))).toBe(true);
  // Only the prefix's bin and the system's folders: nothing of this checkout on PATH.
  const { REDIS_URL: _r, BATCHGEN_URL: _u, BATCHGEN_API_KEY: _k, ...rest } = process.env;
  env = {
    ...rest,
    PATH: [join(prefix, "bin"), dirname(process.execPath), "/usr/local/bin", "/usr/bin", "/bin"].join(delimiter),
    XDG_CACHE_HOME: join(dir, "cache"),
    BATCHGEN_HOME: join(dir, "data"),
    NODE_PATH: "",
  };
}, 300_000);

afterAll(async () => {
  if (upChild && upChild.exitCode === null) {
    const exited = new Promise((r) => upChild!.once("exit", r));
    upChild.kill("SIGINT"); // up drains and stops its redis-server
    const timer = setTimeout(() => upChild!.kill("SIGKILL"), 20_000);
    await exited;
    clearTimeout(timer);
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the installed batchgen, outside the checkout", () => {
  it("batchgen --help lists the commands the README uses", async () => {
    const cwd = join(dir, "somewhere");
    mkdirSync(cwd, { recursive: true });
    const help = await sh("batchgen --help", cwd);
    expect(help.code).toBe(0);
    const usage = readmeBlock("batchgen up` prints", "sh", true).split("\n").filter((l) => l.startsWith("batchgen "));
    expect(usage.length).toBeGreaterThanOrEqual(3);
    for (const line of usage) {
      for (const cmd of line.split(/\s+/)[1]!.split("|")) expect(help.stdout, `batchgen ${cmd}`).toMatch(new RegExp(`^  ${cmd} `, "m"));
    }
  });

  it("batchgen up starts from another folder, and the submit command its banner prints works as printed", async () => {
    const upDir = join(dir, "up-here");
    mkdirSync(upDir, { recursive: true });
    // The installed bin through its #! line (env node), as a shell would run it.
    // --random-model: this checks the installation; the real model has test/e2e-real-model.test.ts.
    upChild = spawn(join(prefix, "bin", "batchgen"), ["up", "--port", "0", "--threads", "1", "--max-seqs", "8", "--random-model"], { cwd: upDir, env });
    upChild.stderr!.on("data", (d) => (upErr += d));
    banner = await new Promise<string>((resolvePromise, reject) => {
      let text = "";
      const timer = setTimeout(() => reject(new Error(`batchgen up not ready\n${text}\n${upErr}`)), 180_000);
      upChild!.stdout!.on("data", (d) => {
        text += d;
        if (text.includes("Stop with Ctrl-C")) {
          clearTimeout(timer);
          resolvePromise(text);
        }
      });
      upChild!.once("exit", (code) => reject(new Error(`batchgen up exited (${code})\n${text}\n${upErr}`)));
    });
    const submit = /^Submit a batch: +(.+)$/m.exec(banner)?.[1];
    expect(submit, banner).toBeDefined();
    expect(submit).toMatch(/batchgen submit \S+ --wait$/);

    const cwd = join(dir, "elsewhere");
    mkdirSync(cwd, { recursive: true });
    const r = await sh(submit!, cwd);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stderr).toMatch(/batch batch_\w+ completed: 10 ok, 0 failed of 10/);
    const out = /^output: (.+)$/m.exec(r.stdout)![1]!;
    expect(out.startsWith(join(cwd, "batchgen-results"))).toBe(true);
    const lines = readFileSync(out, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { custom_id: string; response: { status_code: number } });
    expect(lines.map((l) => l.custom_id)).toEqual(Array.from({ length: 10 }, (_, i) => `request-${i + 1}`));
    expect(lines.every((l) => l.response.status_code === 200)).toBe(true);

    // The README's client commands against the same coordinator.
    const url = /API\s+(http:\/\/\S+)\/v1/.exec(banner)![1]!;
    // The web console ships in the package too.
    expect(banner).toContain(`console  ${url}/console`);
    const page = await fetch(`${url}/console`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("<title>batchgen console</title>");
    expect((await fetch(`${url}/console/console.js`)).headers.get("content-type")).toMatch(/javascript/);
    const key = /API key\s+(\S+)/.exec(banner)![1]!;
    const clientEnv = { BATCHGEN_URL: url, BATCHGEN_API_KEY: key };
    const id = /batch (batch_\w+) completed/.exec(r.stderr)![1]!;
    const status = await sh(`batchgen status ${id}`, cwd, clientEnv);
    expect(status.stdout).toMatch(/^status\s+completed$/m);
    const list = await sh("batchgen list", cwd, clientEnv);
    expect(list.stdout).toContain(id);
    const dl = await sh(`batchgen download ${id} --out dl`, cwd, clientEnv);
    expect(dl.code).toBe(0);
    expect(readFileSync(join(cwd, "dl", "output.jsonl"), "utf8").trim().split("\n")).toHaveLength(10);
  });

  it("the README's SDK snippet runs as written (openai from the repository root)", async () => {
    expect(banner, "batchgen up is running").not.toBe("");
    const snippet = readmeBlock("Or with the official SDK", "ts");
    // A folder inside the checkout (gitignored), so `import "openai"` resolves as it would for a user there.
    mkdirSync(join(ROOT, ".work"), { recursive: true });
    const cwd = mkdtempSync(join(ROOT, ".work", "readme-sdk-"));
    try {
      writeFileSync(join(cwd, "snippet.mjs"), snippet);
      const model = /model\s+(\S+)/.exec(banner)![1]!;
      const requests = [0, 1, 2].map((i) => JSON.stringify({ custom_id: `sdk-${i}`, method: "POST", url: "/v1/chat/completions", body: { model, messages: [{ role: "user", content: `hi ${i}` }], max_tokens: 3 } }));
      writeFileSync(join(cwd, "requests.jsonl"), requests.join("\n") + "\n");
      const url = /API\s+(http:\/\/\S+)\/v1/.exec(banner)![1]!;
      const r = await sh(`node snippet.mjs`, cwd, { BATCHGEN_URL: url, BATCHGEN_API_KEY: /API key\s+(\S+)/.exec(banner)![1]! });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^completed \{ total: 3, completed: 3, failed: 0 \}$/m);
      const out = r.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { custom_id: string });
      expect(out.map((l) => l.custom_id)).toEqual(["sdk-0", "sdk-1", "sdk-2"]);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});
