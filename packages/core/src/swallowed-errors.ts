// Errors a process deliberately does not let fail a request or a background step (a
// best-effort cleanup, a lock renewal the next one repeats) are still never silent: each
// is logged and counted under the name of the place it came from, so an operator sees a
// Redis or store that keeps failing (batchgen_coordinator_swallowed_errors_total{site},
// batchgen_worker_swallowed_errors_total{site}).
import type { Counter } from "prom-client";
import type { Logger } from "./logger.js";

export class SwallowedErrors {
  constructor(
    private readonly logger: Logger,
    private readonly counter: Counter<"site">,
  ) {}

  /** A catch handler for a best-effort step at `site`: logs (warn) and counts the error. */
  at(site: string, fields: Record<string, unknown> = {}): (err: unknown) => void {
    return (err: unknown) => this.report(site, err, fields);
  }

  /** Logs (warn, with `fields` as extra context) and counts one error at `site`. */
  report(site: string, err: unknown, fields: Record<string, unknown> = {}): void {
    this.counter.inc({ site });
    this.logger.warn("best-effort step failed", { ...fields, site, err });
  }

  /**
   * A catch handler for a promise that never rejects by contract: a rejection there is a
   * bug, logged at error and counted at `site` so that it cannot pass unseen.
   */
  bug(site: string, fields: Record<string, unknown> = {}): (err: unknown) => void {
    return (err: unknown) => {
      this.counter.inc({ site });
      this.logger.error("a step that never fails failed (a bug)", { ...fields, site, err });
    };
  }
}
