// The real engine: @batchgen/engine's Engine, imported only when a worker loads a model
// so that tests and the benchmark with the engine double never load the native addon.
import type { EngineLoadOptions } from "@batchgen/engine";
import type { EngineDriver } from "./engine-driver.js";
import type { WorkerConfig } from "./worker-config.js";

const ENGINE_MODULE = "@batchgen/engine";

export async function loadEngineDriver(config: WorkerConfig): Promise<EngineDriver> {
  const { Engine } = (await import(ENGINE_MODULE)) as typeof import("@batchgen/engine");
  return Engine.load(engineLoadOptions(config));
}

/** The engine options a worker's settings give (only those set; the engine's defaults otherwise). */
export function engineLoadOptions(config: WorkerConfig): EngineLoadOptions {
  const options: EngineLoadOptions = { modelDir: config.modelDir, device: config.device as EngineLoadOptions["device"] };
  if (config.maxSeqs !== undefined) options.maxSeqs = config.maxSeqs;
  if (config.threads !== undefined) options.threads = config.threads;
  if (config.maxBatchTokens !== undefined) options.maxBatchTokens = config.maxBatchTokens;
  if (config.maxModelLen !== undefined) options.maxModelLen = config.maxModelLen;
  if (config.kvCacheBlocks !== undefined) options.kvCacheBlocks = config.kvCacheBlocks;
  if (config.kvCacheMemoryFraction !== undefined) options.kvCacheMemoryFraction = config.kvCacheMemoryFraction;
  if (config.deterministic !== undefined) options.deterministic = config.deterministic;
  if (config.quantize !== undefined) options.quantize = config.quantize;
  if (config.noPrefixCaching) options.enablePrefixCaching = false;
  if (config.lora.length > 0) options.loras = config.lora;
  if (config.maxLoras !== undefined) options.maxLoras = config.maxLoras;
  return options;
}
