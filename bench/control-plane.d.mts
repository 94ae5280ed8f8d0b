// Types of bench/control-plane.mjs, for the test that runs a small version of it.
export declare const BENCH_NAME: string;

export interface ControlPlaneBenchOptions {
  lines?: number;
  workers?: number;
  maxSeqs?: number;
  shardLines?: number;
  ackEvery?: number;
  redisUrl?: string;
  coordinatorNodeArgs?: string[];
  workerNodeArgs?: string[];
  log?: (line: string) => void;
}

export interface ControlPlaneBenchResult {
  name: string;
  lines: number;
  workers: number;
  maxSeqs: number;
  shardLines: number;
  /** The --ack-every given, or "coordinator default". */
  ackEvery: number | "coordinator default";
  requestCounts: { total: number; completed: number; failed: number };
  outputLines: number;
  uploadSeconds: number;
  ingestSeconds: number;
  runSeconds: number;
  finalizeSeconds: number;
  resultsPerSecond: number;
  resultsPerSecond10to90: number | null;
  coordinatorCpuSeconds: number;
  workerCpuSeconds: number[];
  /** CPU-seconds of the benchmark's own redis-server while the batch ran; null with an external Redis. */
  redisCpuSeconds: number | null;
  resultsPerCoordinatorCpuSecond: number;
  coordinatorPeakRssMB: number;
  coordinatorPeakRssSampledMB: number;
  hardware: string;
  node: string;
}

export declare function runControlPlaneBench(options?: ControlPlaneBenchOptions): Promise<ControlPlaneBenchResult>;
