// The wire contract between coordinator and workers: generated message types and
// the gRPC service definition. proto/batchgen/v1 is the source of truth.
export * from "./gen/batchgen/v1/worker_pb.js";
export { workerServiceDefinition, type WorkerServiceDefinition } from "./worker-service-grpc.js";
export { create, fromBinary, toBinary, toJson, fromJson } from "@bufbuild/protobuf";
