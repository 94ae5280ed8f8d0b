// A scripted coordinator for the worker's unit tests: a real gRPC server speaking
// WorkerService on loopback, whose behaviour each test drives by hand.
import * as grpc from "@grpc/grpc-js";
import { create, CoordinatorMessageSchema, workerServiceDefinition, type CoordinatorMessage, type WorkerMessage } from "@batchgen/proto";
import type { MessageInitShape } from "@bufbuild/protobuf";

export type CoordinatorMsg = MessageInitShape<typeof CoordinatorMessageSchema>["msg"];

export class FakeConnection {
  readonly received: WorkerMessage[] = [];
  ended = false;
  private waiters: Array<() => void> = [];

  constructor(
    readonly call: grpc.ServerDuplexStream<WorkerMessage, CoordinatorMessage>,
    readonly authorization: string | undefined,
  ) {
    call.on("data", (m: WorkerMessage) => {
      this.received.push(m);
      this.notify();
    });
    call.on("end", () => {
      this.ended = true;
      this.notify();
      call.end();
    });
    call.on("error", () => {
      this.ended = true;
      this.notify();
    });
    call.on("cancelled", () => {
      this.ended = true;
      this.notify();
    });
  }

  send(msg: CoordinatorMsg): void {
    this.call.write(create(CoordinatorMessageSchema, { msg }));
  }

  of<K extends NonNullable<WorkerMessage["msg"]["case"]>>(kind: K): Array<Extract<WorkerMessage["msg"], { case: K }>["value"]> {
    return this.received.filter((m) => m.msg.case === kind).map((m) => m.msg.value) as never;
  }

  /** Resolves once predicate holds (checked on every message), or rejects after timeoutMs. */
  async until(predicate: () => boolean, timeoutMs = 5_000, what = "condition"): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 20);
      });
    }
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

export class FakeCoordinator {
  readonly connections: FakeConnection[] = [];
  port = 0;
  /** Called for each new stream; may refuse it (e.g. with UNAUTHENTICATED). */
  onConnect: (conn: FakeConnection) => void = () => {};
  private readonly server = new grpc.Server();

  async start(): Promise<void> {
    this.server.addService(workerServiceDefinition, {
      connect: (call: grpc.ServerDuplexStream<WorkerMessage, CoordinatorMessage>) => {
        const auth = call.metadata.get("authorization")[0];
        const conn = new FakeConnection(call, typeof auth === "string" ? auth : undefined);
        this.connections.push(conn);
        this.onConnect(conn);
      },
    });
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async untilConnections(n: number, timeoutMs = 5_000): Promise<FakeConnection> {
    const deadline = Date.now() + timeoutMs;
    while (this.connections.length < n) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for connection #${n}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.connections[n - 1]!;
  }

  stop(): void {
    this.server.forceShutdown();
  }
}
