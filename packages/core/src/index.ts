// @batchgen/core: the shared pieces with no server in them — errors, OpenAI batch
// formats and request parsing, object storage (filesystem and S3), ids, logging,
// configuration and metric helpers.
export * from "./errors.js";
export * from "./openai.js";
export * from "./request-body.js";
export * from "./parse-batch-line.js";
export * from "./object-store.js";
export * from "./fs-object-store.js";
export * from "./s3-object-store.js";
export * from "./create-object-store.js";
export * from "./ids.js";
export * from "./logger.js";
export * from "./config.js";
export * from "./metrics.js";
export * from "./request-limits.js";
export * from "./secret-set.js";
export * from "./swallowed-errors.js";
