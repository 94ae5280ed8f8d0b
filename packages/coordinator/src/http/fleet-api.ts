// GET /v1/fleet (an extension): the workers connected to any replica, as their sessions
// last reported them — model, engine and device, tokens/s, requests, KV cache, leases,
// LoRA adapters served and held, last heartbeat. Any API key may read it (the fleet is shared by every tenant).
import type { ServerResponse } from "node:http";
import type { FleetWorker, JobStore } from "../job-store.js";
import { sendJson } from "./http-io.js";

export interface FleetWorkerView {
  object: "fleet.worker";
  id: string;
  session_id: string;
  model: string;
  engine: string;
  /** The device part of the engine string ("cpu …", "cuda:0 H100 …"). */
  device: string;
  tokens_per_second: number;
  requests_running: number;
  requests_waiting: number;
  kv_blocks_used: number;
  kv_blocks_total: number;
  /** LoRA adapters the worker serves on its model, and those in a device slot now. */
  adapters: string[];
  adapters_loaded: string[];
  leases: number;
  connected_at: number;
  last_heartbeat_at: number;
}

export function fleetWorkerView(w: FleetWorker): FleetWorkerView {
  return {
    object: "fleet.worker",
    id: w.workerId,
    session_id: w.sessionId,
    model: w.model,
    engine: w.engine,
    device: w.engine.replace(/^\S+\/\S+\s*/, ""),
    tokens_per_second: w.tokensPerSecond,
    requests_running: w.running,
    requests_waiting: w.waiting,
    kv_blocks_used: w.kvBlocksUsed,
    kv_blocks_total: w.kvBlocksTotal,
    // Records written before these fields existed (a replica of the previous version) have none.
    adapters: w.adapters ?? [],
    adapters_loaded: w.adaptersLoaded ?? [],
    leases: w.leases,
    connected_at: Math.floor(w.connectedAtMs / 1000),
    last_heartbeat_at: w.lastHeartbeatAtMs / 1000,
  };
}

export class FleetApi {
  constructor(private readonly store: JobStore) {}

  async list(res: ServerResponse): Promise<void> {
    const workers = await this.store.fleet(Date.now());
    sendJson(res, 200, { object: "list", data: workers.map(fleetWorkerView) });
  }
}
