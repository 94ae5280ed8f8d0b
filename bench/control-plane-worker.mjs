#!/usr/bin/env node
// A worker process for the control-plane benchmark: the real worker agent (gRPC session,
// credits, leases, results, acks) with InstantEngineDouble in place of the engine and a
// character tokenizer double in place of the model's tokenizer, so the coordinator,
// not inference, is what the benchmark measures. Never a real result.
//
//   node bench/control-plane-worker.mjs COORDINATOR_ADDRESS TOKEN MODEL_NAME MAX_SEQS
import { createLogger } from "../packages/core/dist/index.js";
import { createWorker, InstantEngineDouble } from "../packages/worker/dist/index.js";

/** One token a character (code mod 1000), decoded as letters: cheap, deterministic. */
const characterTokenizerDouble = {
  encode: (text) => {
    const ids = new Array(text.length);
    for (let i = 0; i < text.length; i++) ids[i] = text.charCodeAt(i) % 1000;
    return ids;
  },
  decode: (ids) => {
    let text = "";
    for (const id of ids) text += String.fromCharCode(97 + (id % 26));
    return text;
  },
  applyChatTemplate: (messages) => messages.map((m) => `${m.role}: ${typeof m.content === "string" ? m.content : ""}\n`).join(""),
};

const [coordinator, token, modelName, maxSeqs] = process.argv.slice(2);
const worker = createWorker(
  {
    coordinator,
    token,
    modelName,
    modelDir: "instant-engine-double (no model)",
    maxSeqs: Number(maxSeqs),
    metrics: false,
    reconnectMinMs: 100,
    reconnectMaxMs: 1_000,
  },
  {
    engine: new InstantEngineDouble({ maxModelLen: 4096, completionTokens: 8 }),
    tokenizer: characterTokenizerDouble,
    logger: createLogger("bench-worker", { level: "warn" }),
  },
);
process.on("SIGTERM", () => void worker.stop(0).then(() => process.exit(0)));
worker.closed.catch((err) => {
  process.stderr.write(`bench worker: ${err.message}\n`);
  process.exit(1);
});
await worker.start();
process.stdout.write("bench worker started\n");
