// The control-plane benchmark (bench/control-plane.mjs, engine double) at CI size:
// 20,000 lines through one coordinator process and a worker process whose engine is
// InstantEngineDouble. Asserts that the batch completes with exact counts and that the
// output holds every line once, in order (the benchmark checks that while streaming it);
// speed is reported, not asserted (docs/benchmarks.md has the 1,000,000-line figure).
import { expect, test } from "vitest";
import { BENCH_NAME, runControlPlaneBench } from "../bench/control-plane.mjs";

test("control-plane benchmark (engine double), 20,000 lines: completes with exact counts", async () => {
  const result = await runControlPlaneBench({ lines: 20_000, redisUrl: process.env.REDIS_URL });
  expect(result.name).toBe(BENCH_NAME);
  expect(result.name).toContain("engine double");
  expect(result.requestCounts).toEqual({ total: 20_000, completed: 20_000, failed: 0 });
  expect(result.outputLines).toBe(20_000);
  expect(result.resultsPerSecond).toBeGreaterThan(0);
  expect(result.coordinatorPeakRssMB).toBeGreaterThan(0);
  console.log(
    `${result.name}: ${result.resultsPerSecond} results/s, coordinator peak RSS ${result.coordinatorPeakRssMB} MB (${result.hardware}; CI size, not the benchmark figure)`,
  );
});
