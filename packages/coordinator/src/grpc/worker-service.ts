// The gRPC WorkerService of one coordinator replica: authenticates each Connect stream
// (metadata "authorization: Bearer <worker token>", compared in constant time against
// every accepted token) and runs it as a WorkerSession. TLS when a certificate is given.
import { readFile } from "node:fs/promises";
import { BatchgenError, GrpcStatus, SecretSet, type Logger } from "@batchgen/core";
import { workerServiceDefinition } from "@batchgen/proto";
import * as grpc from "@grpc/grpc-js";
import type { StopReason } from "../job-store.js";
import { STOPPING, WorkerSession, type SessionDeps, type WorkerCall } from "./worker-session.js";

export type WorkerServiceDeps = Omit<SessionDeps, "onClose"> & {
  /** Accepted tokens; empty: any client is accepted (insecure workers). */
  workerTokens: readonly string[];
  /** PEM files of the server certificate chain and key; empty: plaintext. */
  tls: { certFile: string; keyFile: string } | null;
  logger: Logger;
};

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
  private readonly tokens: SecretSet;

  constructor(private readonly deps: WorkerServiceDeps) {
    this.tokens = new SecretSet(deps.workerTokens);
    this.server.addService(workerServiceDefinition, { connect: (call: WorkerCall) => this.connect(call) });
  }

  async listen(host: string, port: number): Promise<number> {
    const credentials = await this.credentials();
    return new Promise((resolve, reject) => {
      this.server.bindAsync(`${host}:${port}`, credentials, (err, bound) => (err ? reject(err) : resolve(bound)));
    });
  }

  private async credentials(): Promise<grpc.ServerCredentials> {
    const tls = this.deps.tls;
    if (!tls) return grpc.ServerCredentials.createInsecure();
    const read = async (file: string, what: string): Promise<Buffer> => {
      try {
        return await readFile(file);
      } catch (err) {
        throw new BatchgenError("invalid_request", `cannot read the gRPC TLS ${what} ${file}: ${(err as Error).message}`, { cause: err });
      }
    };
    const [cert, key] = await Promise.all([read(tls.certFile, "certificate"), read(tls.keyFile, "key")]);
    try {
      return grpc.ServerCredentials.createSsl(null, [{ cert_chain: cert, private_key: key }], false);
    } catch (err) {
      throw new BatchgenError("invalid_request", `the gRPC TLS certificate or key is not valid PEM: ${(err as Error).message}`, { cause: err });
    }
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  private connect(call: WorkerCall): void {
    if (this.tokens.size > 0) {
      const auth = call.metadata.get("authorization")[0];
      if (!this.tokens.hasBearer(typeof auth === "string" ? auth : undefined)) {
        // Nothing of the stream is read: a client without a valid token learns nothing.
        this.deps.metrics.workersRefused.inc();
        this.deps.logger.warn("refused a worker stream: missing or wrong worker token", { peer: call.getPeer() });
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
    await Promise.all([...this.sessions].map((s) => s.close(STOPPING, { code: GrpcStatus.UNAVAILABLE, details: STOPPING })));
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
