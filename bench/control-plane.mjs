#!/usr/bin/env node
// Control-plane benchmark (engine double): how many results per second one coordinator
// sustains, and its peak memory (RSS), when the engine answers instantly.
//
// One coordinator process (packages/coordinator/dist/main.js, filesystem store in a temp
// folder) on a redis-server; worker processes that run the real worker agent with
// InstantEngineDouble (bench/control-plane-worker.mjs). A generated N-line chat batch is
// uploaded, ingested, run and finalized; the output is streamed back and checked (every
// custom_id once, in input order). Numbers: results/s from the moment the batch is in
// progress until every line is done (and over its 10%-90% stretch), the coordinator's
// peak RSS (VmHWM) over the whole run, upload+ingest and finalize times.
//
// CPU-seconds each process spent while the batch ran are reported too (the coordinator,
// each worker, and redis-server when the benchmark started its own): on a shared machine
// they say what the coordinator costs per result whatever else is running.
//
//   node bench/control-plane.mjs [--lines 1000000] [--workers 1] [--max-seqs 1024]
//                                [--shard-lines 1000] [--ack-every N (default: the coordinator's)] [--json]
//                                [--cpu-prof DIR] [--cpu-prof-worker DIR]   (V8 CPU profiles)
// Uses REDIS_URL when set, else starts its own redis-server on a free port.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, mkdtempSync, openAsBlob, readFileSync, rmSync, statSync } from "node:fs";
import { cpus, totalmem, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { createServer, Socket } from "node:net";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const COORDINATOR_MAIN = join(ROOT, "packages/coordinator/dist/main.js");
const WORKER_MAIN = join(ROOT, "bench/control-plane-worker.mjs");
export const BENCH_NAME = "control plane alone (engine double: InstantEngineDouble)";
const MODEL = "instant-engine-double";
const API_KEY = "sk-bench";
const WORKER_TOKEN = "bench-worker-token";

/**
 * Runs the benchmark once and returns its measurements.
 * @param {{ lines?: number, workers?: number, maxSeqs?: number, shardLines?: number, redisUrl?: string,
 *           log?: (line: string) => void }} options
 */
export async function runControlPlaneBench(options = {}) {
  const lines = options.lines ?? 1_000_000;
  const workerCount = options.workers ?? 1;
  const maxSeqs = options.maxSeqs ?? 1024;
  const shardLines = options.shardLines ?? 1000;
  // Unset: the coordinator's own default (ackEvery in packages/coordinator/README.md).
  const ackEvery = options.ackEvery;
  const log = options.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), "bg-bench-cp-"));
  const cleanups = [() => rmSync(dir, { recursive: true, force: true })];
  try {
    // A redis-server of its own (pid known, so its CPU is reported) unless one is given.
    let redisPid = null;
    const redisUrl =
      options.redisUrl ??
      process.env.REDIS_URL ??
      (await startRedis(dir, cleanups, (pid) => {
        redisPid = pid;
      }));
    const input = join(dir, "input.jsonl");
    await writeInput(input, lines);
    log(`input: ${lines} lines, ${(statSync(input).size / 1e6).toFixed(1)} MB`);

    const coordinator = await startProcess("coordinator", [
      COORDINATOR_MAIN,
      "--http-port", "0",
      "--grpc-port", "0",
      "--redis-url", redisUrl,
      "--queue-prefix", `bench${randomBytes(5).toString("hex")}`,
      "--store-url", join(dir, "store"),
      "--api-keys", `${API_KEY}:bench`,
      "--worker-token", WORKER_TOKEN,
      // Its own redis-server runs without persistence (as when the figures were measured);
      // a REDIS_URL Redis may keep AOF on: either is accepted here.
      "--allow-ephemeral-redis",
      "--shard-lines", String(shardLines),
      ...(ackEvery === undefined ? [] : ["--ack-every", String(ackEvery)]),
      "--log-level", "info",
    ], (l) => l.includes('"coordinator started"'), options.coordinatorNodeArgs ?? []);
    cleanups.push(() => coordinator.stop());
    const started = JSON.parse(coordinator.matched);
    const http = `http://127.0.0.1:${started.http_port}`;
    const grpc = `127.0.0.1:${started.grpc_port}`;
    const workers = [];
    for (let i = 0; i < workerCount; i++) {
      const w = await startProcess(
        `worker-${i}`,
        [WORKER_MAIN, grpc, WORKER_TOKEN, MODEL, String(maxSeqs)],
        (l) => l === "bench worker started",
        options.workerNodeArgs ?? [],
      );
      cleanups.push(() => w.stop());
      workers.push(w);
    }
    // The worker's Hello registers the model; wait until the fleet serves it.
    await waitFor(async () => {
      const text = await fetch(`${http}/metrics`).then((r) => r.text());
      return Number(/^batchgen_coordinator_workers_connected(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? 0) >= workerCount;
    }, 15_000);

    const t0 = Date.now();
    const form = new FormData();
    form.set("purpose", "batch");
    form.set("file", await openAsBlob(input), "input.jsonl");
    const file = await api(http, "POST", "/v1/files", form);
    const tUploaded = Date.now();
    const batch = await api(http, "POST", "/v1/batches", {
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });

    // Poll progress: when the batch is in progress, when 10% / 90% / all lines are done.
    let tInProgress = 0, t10 = 0, t90 = 0, tAllDone = 0, last = batch, rssMaxSampled = 0;
    const pids = [coordinator.pid, ...workers.map((w) => w.pid), ...(redisPid ? [redisPid] : [])];
    let cpuAtStart = null, cpuAtEnd = null;
    while (!["completed", "failed", "expired", "cancelled"].includes(last.status)) {
      await sleep(200);
      last = await api(http, "GET", `/v1/batches/${batch.id}`);
      const now = Date.now();
      const done = last.progress?.lines_done ?? 0;
      if (!tInProgress && last.status !== "validating") {
        tInProgress = now;
        cpuAtStart = pids.map(cpuSeconds);
      }
      if (!t10 && done >= lines * 0.1) t10 = now;
      if (!t90 && done >= lines * 0.9) t90 = now;
      if (!tAllDone && (done >= lines || ["finalizing", "completed"].includes(last.status))) {
        tAllDone = now;
        cpuAtEnd = pids.map(cpuSeconds);
      }
      rssMaxSampled = Math.max(rssMaxSampled, rssBytes(coordinator.pid));
      if (now - t0 > 3_600_000) throw new Error("benchmark batch did not finish within an hour");
    }
    const tCompleted = Date.now();
    const peakRss = peakRssBytes(coordinator.pid);
    if (last.status !== "completed") throw new Error(`batch ended ${last.status}: ${JSON.stringify(last.errors)}`);
    const counts = last.request_counts;
    const outputLines = await checkOutput(http, last.output_file_id, lines);

    const runSeconds = (tAllDone - tInProgress) / 1000;
    const cpu = pids.map((_, i) => Math.round((cpuAtEnd[i] - cpuAtStart[i]) * 10) / 10);
    const result = {
      name: BENCH_NAME,
      lines,
      workers: workerCount,
      maxSeqs,
      shardLines,
      ackEvery: ackEvery ?? "coordinator default",
      requestCounts: counts,
      outputLines,
      uploadSeconds: (tUploaded - t0) / 1000,
      ingestSeconds: (tInProgress - tUploaded) / 1000,
      runSeconds,
      finalizeSeconds: (tCompleted - tAllDone) / 1000,
      resultsPerSecond: Math.round(lines / runSeconds),
      resultsPerSecond10to90: t90 > t10 ? Math.round((lines * 0.8) / ((t90 - t10) / 1000)) : null,
      coordinatorCpuSeconds: cpu[0],
      workerCpuSeconds: cpu.slice(1, 1 + workerCount),
      redisCpuSeconds: redisPid ? cpu[1 + workerCount] : null,
      resultsPerCoordinatorCpuSecond: Math.round(lines / cpu[0]),
      coordinatorPeakRssMB: Math.round(peakRss / 2 ** 20),
      coordinatorPeakRssSampledMB: Math.round(rssMaxSampled / 2 ** 20),
      hardware: `${cpus().length} cores (${cpus()[0]?.model.trim()}), ${Math.round(totalmem() / 2 ** 30)} GiB`,
      node: process.version,
    };
    return result;
  } finally {
    for (const c of cleanups.reverse()) await c();
  }
}

async function writeInput(path, lines) {
  const out = createWriteStream(path);
  const words = ["alpha", "batch", "coordinator", "delta", "engine", "fleet", "gamma", "lease"];
  for (let i = 0; i < lines; i++) {
    const line = JSON.stringify({
      custom_id: `r-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: {
        model: MODEL,
        messages: [{ role: "user", content: `Tell me about ${words[i % 8]} and ${words[(i * 3) % 8]} number ${i}.` }],
        max_tokens: 8,
        temperature: 0,
      },
    });
    if (!out.write(line + "\n")) await new Promise((r) => out.once("drain", r));
  }
  await new Promise((resolve, reject) => out.end((err) => (err ? reject(err) : resolve())));
}

/** Streams output.jsonl: every line a response, custom_ids r-0..r-(n-1) in order. */
async function checkOutput(http, fileId, lines) {
  const res = await fetch(`${http}/v1/files/${fileId}/content`, { headers: { authorization: `Bearer ${API_KEY}` } });
  if (!res.ok) throw new Error(`output download: HTTP ${res.status}`);
  let n = 0;
  for await (const line of createInterface({ input: Readable.fromWeb(res.body) })) {
    if (line === "") continue;
    const o = JSON.parse(line);
    if (o.custom_id !== `r-${n}` || o.response?.status_code !== 200) throw new Error(`output line ${n} is ${line.slice(0, 200)}`);
    n++;
  }
  if (n !== lines) throw new Error(`output has ${n} lines, expected ${lines}`);
  return n;
}

async function api(http, method, path, body) {
  const headers = { authorization: `Bearer ${API_KEY}` };
  let payload = body;
  if (body !== undefined && !(body instanceof FormData)) {
    headers["content-type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const res = await fetch(http + path, { method, headers, body: payload, ...(payload instanceof FormData ? { duplex: "half" } : {}) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

function rssBytes(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** User + system CPU time of a process so far, in seconds (/proc/PID/stat, clock ticks of 1/100 s). */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** The kernel's high-water mark of the process's resident set (VmHWM). */
function peakRssBytes(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmHWM for pid ${pid}`);
  return Number(m[1]) * 1024;
}

function startProcess(name, args, ready, nodeArgs = []) {
  const child = spawn(process.execPath, [...nodeArgs, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, LOG_LEVEL: "warn" } });
  const tail = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 30 s:\n${tail.join("\n")}`)), 30_000);
    child.once("exit", (code, signal) => reject(new Error(`${name} exited (${code ?? signal}):\n${tail.join("\n")}`)));
    for (const s of [child.stdout, child.stderr]) {
      createInterface({ input: s }).on("line", (line) => {
        tail.push(line);
        if (tail.length > 30) tail.shift();
        if (ready(line)) {
          clearTimeout(timer);
          resolve({
            pid: child.pid,
            matched: line,
            stop: async () => {
              if (child.exitCode !== null || child.signalCode !== null) return;
              const exited = new Promise((r) => child.once("exit", r));
              child.kill("SIGTERM");
              const t = setTimeout(() => child.kill("SIGKILL"), 5_000);
              await exited;
              clearTimeout(t);
            },
          });
        }
      });
    }
  });
}

async function startRedis(dir, cleanups, onPid) {
  const port = await new Promise((resolve) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const p = srv.address().port;
      srv.close(() => resolve(p));
    });
  });
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], {
    stdio: "ignore",
  });
  child.on("error", (err) => {
    console.error(`cannot start redis-server (set REDIS_URL or install redis-server): ${err.message}`);
    process.exit(1);
  });
  cleanups.push(() => child.kill("SIGKILL"));
  onPid(child.pid);
  const url = `redis://127.0.0.1:${port}`;
  await waitFor(
    () =>
      new Promise((resolve) => {
        const s = new Socket();
        s.once("error", () => resolve(false));
        s.connect(port, "127.0.0.1", () => {
          s.destroy();
          resolve(true);
        });
      }),
    10_000,
  );
  return url;
}

async function waitFor(probe, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function parseArgs(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--json") o.json = true;
    else if (a === "--cpu-prof") o.coordinatorNodeArgs = ["--cpu-prof", `--cpu-prof-dir=${argv[++i]}`];
    else if (a === "--cpu-prof-worker") o.workerNodeArgs = ["--cpu-prof", `--cpu-prof-dir=${argv[++i]}`];
    else if (/^--(lines|workers|max-seqs|shard-lines|ack-every)$/.test(a)) o[a.slice(2).replace(/-(\w)/g, (_, c) => c.toUpperCase())] = Number(argv[++i]);
    else throw new Error(`unknown argument ${a} (see the header of bench/control-plane.mjs)`);
  }
  return o;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const opts = parseArgs(process.argv.slice(2));
  const result = await runControlPlaneBench({ ...opts, log: (l) => console.error(l) });
  if (opts.json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(`${result.name}`);
    console.log(`  ${result.lines} lines, ${result.workers} worker process(es) x max-seqs ${result.maxSeqs}, shards of ${result.shardLines}, ack every ${result.ackEvery}`);
    console.log(`  results/s: ${result.resultsPerSecond} (in progress -> all done, ${result.runSeconds.toFixed(1)} s); 10%-90%: ${result.resultsPerSecond10to90}`);
    console.log(`  coordinator CPU while running: ${result.coordinatorCpuSeconds} s (${result.resultsPerCoordinatorCpuSecond} results per CPU-second); workers: ${result.workerCpuSeconds.join(", ")} s; redis: ${result.redisCpuSeconds ?? "n/a (REDIS_URL)"} s`);
    console.log(`  coordinator peak RSS: ${result.coordinatorPeakRssMB} MB`);
    console.log(`  upload ${result.uploadSeconds.toFixed(1)} s, ingest ${result.ingestSeconds.toFixed(1)} s, finalize ${result.finalizeSeconds.toFixed(1)} s`);
    console.log(`  ${result.hardware}, Node ${result.node}`);
  }
}
