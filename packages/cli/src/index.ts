// @batchgen/cli: the `batchgen` command (bin: dist/main.js), and its pieces for tests
// and scripts.
export { buildProgram, runCli } from "./program.js";
export { ApiClient, type Batch, type BatchList } from "./api-client.js";
export { CliError } from "./cli-error.js";
export { startLocalStack, type LocalStack, type LocalStackOptions } from "./local-stack.js";
export { startRedisServer } from "./redis-launcher.js";
export { DEFAULT_API_KEY, DEFAULT_URL } from "./defaults.js";
