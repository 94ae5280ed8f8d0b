// The scripted workers one test file starts on its clusters, so that each test's
// afterEach can kill whatever the test left running.
import { MODEL, WORKER_TOKEN, type Cluster } from "./harness.js";
import { ScriptedWorker, type ScriptedWorkerOptions } from "./scripted-worker.js";

export class ScriptedFleet {
  readonly #running: ScriptedWorker[] = [];

  /** `defaults` apply to every worker this fleet starts, under each start()'s own options. */
  constructor(private readonly defaults: Partial<ScriptedWorkerOptions> = {}) {}

  /** A connected worker of MODEL on replica `replica` of c. */
  async start(c: Cluster, opts: Partial<ScriptedWorkerOptions> = {}, replica = 0): Promise<ScriptedWorker> {
    const w = this.track(new ScriptedWorker({ address: c.grpc(replica), model: MODEL, token: WORKER_TOKEN, ...this.defaults, ...opts }));
    await w.start();
    return w;
  }

  /** Adds a worker made elsewhere (e.g. one whose start() is meant to fail) to those killAll() kills. */
  track(w: ScriptedWorker): ScriptedWorker {
    this.#running.push(w);
    return w;
  }

  killAll(): void {
    for (const w of this.#running.splice(0)) w.kill();
  }
}
