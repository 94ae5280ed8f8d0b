// @batchgen/engine: the native continuous-batching engine (Engine), its errors,
// and the pure-TypeScript tokenizer, chat templates and model generator (also
// importable alone, without the addon, as "@batchgen/engine/tokenizer").
export { Engine } from "./engine.js";
export type {
  Device,
  EngineLoadOptions,
  EngineStats,
  FinishReason,
  GenerateRequest,
  GenerateResult,
  ModelInfo,
  TokenLogprob,
} from "./engine-types.js";
export {
  DeviceError,
  EngineError,
  InvalidArgumentError,
  ModelLoadError,
  NotFoundError,
  OutOfMemoryError,
  UnsupportedError,
} from "./errors.js";
export * from "./tokenizer-entry.js";
