// What the worker needs from an inference engine. @batchgen/engine's Engine satisfies
// it as is; InstantEngineDouble stands in for it in unit tests and in the
// control-plane benchmark (where the engine must not be the bottleneck).
import type { EngineStats, GenerateRequest, GenerateResult } from "@batchgen/engine";

export type { EngineStats, GenerateRequest, GenerateResult };

export interface EngineDriver {
  readonly model: {
    readonly maxModelLen: number;
    readonly eosTokenIds: number[];
    readonly device: string;
    readonly deviceName: string;
    /** How the weights are held (ModelInfo.weightFormat), their bytes and parameters, KV bytes a token. */
    readonly weightFormat?: string;
    readonly weightBytes?: number;
    readonly weightParams?: number;
    readonly kvBytesPerToken?: number;
    /** Sequences the engine runs at once (ModelInfo.maxSeqs); absent: unknown. */
    readonly maxSeqs?: number;
    /** LoRA adapters a request may name (GenerateRequest.lora). */
    readonly loras: string[];
  };
  /** Resolves when the request finishes; an aborted request resolves with finishReason "abort". */
  generate(request: GenerateRequest): Promise<GenerateResult>;
  /** Stops a running or waiting request; throws for an id the engine does not know. */
  abort(id: string): void;
  stats(): EngineStats;
  close(): Promise<void>;
}
