// A @grpc/grpc-js service definition for WorkerService, built from the generated
// protobuf-es schemas (protoc-gen-es emits no grpc-js stubs). Both sides use it:
// the coordinator registers it with server.addService, the worker makes a client
// with grpc.makeGenericClientConstructor.
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ServiceDefinition } from "@grpc/grpc-js";
import {
  CoordinatorMessageSchema,
  WorkerMessageSchema,
  type CoordinatorMessage,
  type WorkerMessage,
} from "./gen/batchgen/v1/worker_pb.js";

export interface WorkerServiceDefinition extends ServiceDefinition {
  connect: {
    path: string;
    requestStream: true;
    responseStream: true;
    requestSerialize: (m: WorkerMessage) => Buffer;
    requestDeserialize: (b: Buffer) => WorkerMessage;
    responseSerialize: (m: CoordinatorMessage) => Buffer;
    responseDeserialize: (b: Buffer) => CoordinatorMessage;
  };
}

export const workerServiceDefinition: WorkerServiceDefinition = {
  connect: {
    path: "/batchgen.v1.WorkerService/Connect",
    requestStream: true,
    responseStream: true,
    requestSerialize: (m) => Buffer.from(toBinary(WorkerMessageSchema, m)),
    requestDeserialize: (b) => fromBinary(WorkerMessageSchema, b),
    responseSerialize: (m) => Buffer.from(toBinary(CoordinatorMessageSchema, m)),
    responseDeserialize: (b) => fromBinary(CoordinatorMessageSchema, b),
  },
};
