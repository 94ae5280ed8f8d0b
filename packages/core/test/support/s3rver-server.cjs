// Runs s3rver 3.7.1 as its own process: `node --openssl-legacy-provider s3rver-server.cjs DIR BUCKET`.
// Why a child process with the legacy provider: s3rver makes ListObjectsV2 continuation
// tokens with DES, which OpenSSL 3 (Node >= 17) only offers through the legacy provider;
// without it every listing longer than one page (1,000 keys) fails with a 500.
// Prints {"port":N} once listening, then one "REQ <method> <url>" line per request.
"use strict";
const S3rver = require("s3rver");

const [dir, bucket] = process.argv.slice(2);
if (!dir || !bucket) {
  console.error("usage: s3rver-server.cjs DIR BUCKET");
  process.exit(2);
}
const server = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory: dir, configureBuckets: [{ name: bucket }] });
server.run().then(
  (addr) => {
    server.httpServer.on("request", (req) => process.stdout.write(`REQ ${req.method} ${req.url}\n`));
    process.stdout.write(JSON.stringify({ port: addr.port }) + "\n");
  },
  (err) => {
    console.error(`s3rver failed to start: ${err.message}`);
    process.exit(1);
  },
);
process.on("SIGTERM", () => server.close().finally(() => process.exit(0)));
