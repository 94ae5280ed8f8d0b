import { describe, expect, it } from "vitest";

import type { EngineDriver } from "./engine-driver.js";
import { weightsReport } from "./weights-report.js";

function engine(model: Partial<EngineDriver["model"]>): EngineDriver {
  return { model: { maxModelLen: 8, eosTokenIds: [], device: "cpu", deviceName: "cpu", ...model } } as EngineDriver;
}

describe("weightsReport", () => {
  it("gives the format, bytes of weights a parameter and KV bytes a token", () => {
    const r = weightsReport(engine({
      weightFormat: "int4 g64 (AWQ int4 g64) 72.3%, f32 (embeddings, norms, biases) 27.7%",
      weightBytes: 1_000,
      weightParams: 1_600,
      kvBytesPerToken: 1_024,
    }));
    expect(r).toEqual({
      weights: "int4 g64 (AWQ int4 g64) 72.3%, f32 (embeddings, norms, biases) 27.7%",
      weightBytesPerParam: 0.625,
      kvBytesPerToken: 1_024,
    });
  });

  it("leaves out what an engine does not say", () => {
    expect(weightsReport(engine({}))).toEqual({});
    expect(weightsReport(engine({ weightBytes: 10, weightParams: 0 }))).toEqual({});
  });
});
