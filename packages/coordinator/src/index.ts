// @batchgen/coordinator: the control plane. createCoordinator(config) runs one replica
// (OpenAI-compatible HTTP API, gRPC WorkerService, ingest, BullMQ lease broker, finalizer,
// /metrics); main.ts runs it from the command line.
export { createCoordinator, type Coordinator, type CoordinatorExtras } from "./coordinator.js";
export {
  coordinatorConfigSchema,
  COORDINATOR_SWITCHES,
  loadCoordinatorConfig,
  windowMs,
  type CoordinatorConfig,
  type CoordinatorOptions,
} from "./coordinator-config.js";
export { parseFlags } from "./parse-flags.js";
export type { BatchView } from "./batch-view.js";
