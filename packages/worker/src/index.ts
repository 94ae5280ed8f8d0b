// @batchgen/worker: the agent that runs in a GPU pod. It holds a gRPC session with the
// coordinator, turns leased request lines into engine requests and OpenAI response
// bodies, and drains on SIGTERM.
export { createWorker, WORKER_VERSION, type Worker, type WorkerDeps, type WorkerStats } from "./worker.js";
export { runWorkerProcess } from "./run-worker.js";
export { coordinatorAddresses, loadWorkerConfig, workerConfigSchema, type WorkerConfig, type WorkerConfigInput } from "./worker-config.js";
export { workerFlags, workerFlagHelp, workerFlagSpec, type WorkerFlag } from "./worker-flags.js";
export type { EngineDriver } from "./engine-driver.js";
export { InstantEngineDouble, type InstantEngineDoubleOptions } from "./instant-engine-double.js";
export { loadWorkerTokenizer, type WorkerTokenizer } from "./worker-tokenizer.js";
export { LineRunner, type LineOutcome } from "./line-runner.js";
export { readEmbeddingModel, type EmbeddingModel } from "./embedding-model.js";
export { buildResponseBody, responseBodyJson, type ChatCompletionBody, type TextCompletionBody } from "./response-body.js";
export { toGenerateRequest } from "./sampling-params.js";
export { applyStopStrings, planStopStrings } from "./stop-strings.js";
export { CreditLedger } from "./credit-ledger.js";
