import { parseArgs } from "node:util";
import { describe, expect, it } from "vitest";
import { engineLoadOptions } from "./load-engine-driver.js";
import { coordinatorAddresses, loadWorkerConfig } from "./worker-config.js";
import { workerFlagHelp, workerFlagOptions } from "./worker-flags.js";

const base = { token: "t", modelDir: "/models/tiny-gemma" };

describe("worker config", () => {
  it("takes one coordinator address or a comma-separated list of them", () => {
    expect(loadWorkerConfig({ flags: base }).coordinators).toEqual(["127.0.0.1:50051"]);
    expect(loadWorkerConfig({ flags: { ...base, coordinator: "dns:///coordinator:50051" } }).coordinators).toEqual(["dns:///coordinator:50051"]);
    const env = { BATCHGEN_WORKER_COORDINATOR: "a:1, b:2,c:3", BATCHGEN_WORKER_TOKEN: "t", BATCHGEN_WORKER_MODEL_DIR: "/m" };
    const c = loadWorkerConfig({ env });
    expect(c.coordinators).toEqual(["a:1", "b:2", "c:3"]);
    expect(c.coordinator).toBe("a:1, b:2,c:3"); // the setting as given
  });

  it("keeps a gRPC ipv4:/ipv6: target whole (its commas belong to the target)", () => {
    expect(coordinatorAddresses("ipv4:10.0.0.1:50051,10.0.0.2:50051")).toEqual(["ipv4:10.0.0.1:50051,10.0.0.2:50051"]);
  });

  it("rejects a list with an empty entry, naming the setting", () => {
    expect(() => loadWorkerConfig({ flags: { ...base, coordinator: "a:1,,b:2" } })).toThrow(/coordinator/);
    expect(() => loadWorkerConfig({ flags: { ...base, coordinator: "a:1," } })).toThrow(/coordinator/);
  });

  it("--quantize takes fp8 and names itself when given anything else", () => {
    expect(loadWorkerConfig({ flags: { ...base, quantize: "fp8" } }).quantize).toBe("fp8");
    expect(loadWorkerConfig({ flags: base }).quantize).toBeUndefined();
    expect(() => loadWorkerConfig({ flags: { ...base, quantize: "int8" } })).toThrow(/quantize/);
    expect(workerFlagHelp()).toMatch(/^ {2}--quantize <fp8> +quantize the model's/m);
  });

  it("--deterministic is a switch; the environment variable takes true/false", () => {
    const { values } = parseArgs({ args: ["--deterministic", "--max-seqs", "8"], options: workerFlagOptions, strict: true });
    expect(values).toEqual({ deterministic: true, "max-seqs": "8" });
    expect(loadWorkerConfig({ flags: { ...base, deterministic: values.deterministic } }).deterministic).toBe(true);
    expect(loadWorkerConfig({ flags: base }).deterministic).toBeUndefined();
    expect(loadWorkerConfig({ env: { BATCHGEN_WORKER_DETERMINISTIC: "false" }, flags: base }).deterministic).toBe(false);
    expect(workerFlagHelp()).toMatch(/^ {2}--deterministic +batch-invariant/m);
  });

  it("names the model after its directory, or its GGUF file without the extension", () => {
    expect(loadWorkerConfig({ flags: base }).modelName).toBe("tiny-gemma");
    expect(loadWorkerConfig({ flags: { ...base, modelDir: "/m/gemma-3-270m-q4_k_m.gguf" } }).modelName).toBe("gemma-3-270m-q4_k_m");
    expect(loadWorkerConfig({ flags: { ...base, modelName: "x" } }).modelName).toBe("x");
  });

  it("--no-prefix-caching is a switch that turns the engine's prefix caching off", () => {
    const { values } = parseArgs({ args: ["--no-prefix-caching"], options: workerFlagOptions, strict: true });
    expect(values).toEqual({ "no-prefix-caching": true });
    expect(loadWorkerConfig({ flags: { ...base, noPrefixCaching: values["no-prefix-caching"] } }).noPrefixCaching).toBe(true);
    expect(loadWorkerConfig({ flags: base }).noPrefixCaching).toBe(false);
    expect(loadWorkerConfig({ env: { BATCHGEN_WORKER_NO_PREFIX_CACHING: "true" }, flags: base }).noPrefixCaching).toBe(true);
    expect(workerFlagHelp()).toMatch(/^ {2}--no-prefix-caching +compute every prompt in full/m);
    // ... and reaches the engine as enablePrefixCaching: false; without it the engine's default (on).
    expect(engineLoadOptions(loadWorkerConfig({ flags: { ...base, noPrefixCaching: true } })).enablePrefixCaching).toBe(false);
    expect(engineLoadOptions(loadWorkerConfig({ flags: base }))).not.toHaveProperty("enablePrefixCaching");
  });
});
