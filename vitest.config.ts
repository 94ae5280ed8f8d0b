import { defineConfig } from "vitest/config";

// One run for every package. Unit specs sit beside the code (src/**/*.test.ts);
// tests that need Redis, an S3 server, Python or the native engine live in a
// package's test/ folder or in the top-level test/ folder.
export default defineConfig({
  test: {
    include: ["packages/*/src/**/*.test.ts", "packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/dist/**"],
    globalSetup: ["./test/support/global-setup.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: "forks",
    fileParallelism: true,
    maxWorkers: 2,
  },
});
