// The gRPC side of the worker: a client for WorkerService built from the shared
// service definition, and one Connect stream per session.
import * as grpc from "@grpc/grpc-js";
import { workerServiceDefinition, type CoordinatorMessage, type WorkerMessage } from "@batchgen/proto";
import { encodeWorkerMessage } from "./worker-message-encoder.js";

export type ConnectStream = grpc.ClientDuplexStream<WorkerMessage, CoordinatorMessage>;

// Results (one message a line) are serialized by encodeWorkerMessage, the same bytes as
// the shared definition's toBinary at a fraction of the cost.
const WorkerServiceClient = grpc.makeGenericClientConstructor(
  { connect: { ...workerServiceDefinition.connect, requestSerialize: encodeWorkerMessage } },
  "WorkerService",
);

export interface CoordinatorClientOptions {
  /** host:port (or any gRPC target such as dns:///coordinator:50051). */
  address: string;
  token: string;
  /** TLS: null trusts the system's CA store; ca: PEM bytes of the CAs to trust instead. */
  tls?: { ca: Buffer | null; serverName?: string } | null;
}

export class CoordinatorClient {
  private readonly client: grpc.Client & { connect(metadata: grpc.Metadata, options?: grpc.CallOptions): ConnectStream };

  constructor(private readonly opts: CoordinatorClientOptions) {
    const tls = opts.tls;
    const credentials = tls ? grpc.credentials.createSsl(tls.ca) : grpc.credentials.createInsecure();
    // A client per session: a reconnect resolves the address again and may land on any
    // replica behind it. Keepalive pings find a coordinator that vanished without a FIN.
    this.client = new WorkerServiceClient(opts.address, credentials, {
      "grpc.keepalive_time_ms": 20_000,
      "grpc.keepalive_timeout_ms": 10_000,
      "grpc.max_receive_message_length": 256 * 1024 * 1024,
      "grpc.max_send_message_length": 64 * 1024 * 1024,
      ...(tls?.serverName ? { "grpc.ssl_target_name_override": tls.serverName, "grpc.default_authority": tls.serverName } : {}),
    }) as never;
  }

  connect(): ConnectStream {
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${this.opts.token}`);
    return this.client.connect(metadata);
  }

  close(): void {
    this.client.close();
  }
}
