// The gRPC WorkerService of one coordinator replica: authenticates each Connect stream
// (metadata "authorization: Bearer <worker token>") and runs it as a WorkerSession.
import { GrpcStatus, type Logger } from "@batchgen/core";
import { workerServiceDefinition } from "@batchgen/proto";
import * as grpc from "@grpc/grpc-js";
import type { StopReason } from "../job-store.js";
import { WorkerSession, type SessionDeps, type WorkerCall } from "./worker-session.js";

export type WorkerServiceDeps = Omit<SessionDeps, "onClose"> & { workerToken: string; logger: Logger };

const SERVER_OPTIONS: grpc.ServerOptions = {
  // Leases and results carry whole request / response bodies.
  "grpc.max_receive_message_length": -1,
  "grpc.max_send_message_length": -1,
  // Notice a vanished worker (no FIN: power loss, partition) within ~30 s.
  "grpc.keepalive_time_ms": 20_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.keepalive_permit_without_calls": 1,
  "grpc.http2.min_ping_interval_without_data_ms": 5_000,
};

export class WorkerService {
  private readonly server = new grpc.Server(SERVER_OPTIONS);
  private readonly sessions = new Set<WorkerSession>();

  constructor(private readonly deps: WorkerServiceDeps) {
    this.server.addService(workerServiceDefinition, { connect: (call: WorkerCall) => this.connect(call) });
  }

  async listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) =>
        err ? reject(err) : resolve(bound),
      );
    });
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  private connect(call: WorkerCall): void {
    const token = this.deps.workerToken;
    if (token !== "") {
      const auth = call.metadata.get("authorization")[0];
      if (auth !== `Bearer ${token}`) {
        call.emit("error", { code: GrpcStatus.UNAUTHENTICATED, details: "invalid worker token" });
        return;
      }
    }
    const session = new WorkerSession(call, { ...this.deps, onClose: (s) => this.sessions.delete(s) });
    this.sessions.add(session);
  }

  /** Push a cancel to every session holding leases of the batch. */
  cancelBatch(batchId: string, reason: StopReason): void {
    for (const s of this.sessions) s.cancelBatch(batchId, reason);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.sessions].map((s) => s.close("coordinator stopping", { code: GrpcStatus.UNAVAILABLE, details: "coordinator stopping" })));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 2_000);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
