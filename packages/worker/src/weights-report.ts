// The worker's start log says which weight format runs and what the weights and
// the KV cache cost (issue 14): the engine's own account, in numbers a reader can
// compare across models.
import type { EngineDriver } from "./engine-driver.js";

export interface WeightsReport {
  /** ModelInfo.weightFormat: each storage with its share of the parameters, and how quantized weights run. */
  weights?: string;
  /** Bytes the backend holds the weights in, per parameter (4 for f32, 2 for bf16, about 0.5-1 packed). */
  weightBytesPerParam?: number;
  /** K and V bytes one token takes over all layers. */
  kvBytesPerToken?: number;
}

/** What the engine says of its weights and KV; fields it does not give are left out. */
export function weightsReport(engine: EngineDriver): WeightsReport {
  const { weightFormat, weightBytes, weightParams, kvBytesPerToken } = engine.model;
  const out: WeightsReport = {};
  if (weightFormat) out.weights = weightFormat;
  if (weightBytes !== undefined && weightParams) out.weightBytesPerParam = Number((weightBytes / weightParams).toFixed(3));
  if (kvBytesPerToken !== undefined) out.kvBytesPerToken = kvBytesPerToken;
  return out;
}
