// A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it; the listener is
// closed again), for the scripts that start servers: demo.mjs and gpu-pipeline/pipeline-tool.mjs.
import { createServer } from "node:net";

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}
