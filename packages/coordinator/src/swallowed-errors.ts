// Errors the coordinator deliberately does not let fail a request or a background step
// (a best-effort cleanup, a lock renewal the next one repeats) are still never silent:
// each is logged and counted under the name of the place it came from, so an operator
// sees a Redis or store that keeps failing (metric batchgen_coordinator_swallowed_errors_total{site}).
import type { Logger } from "@batchgen/core";
import type { Counter } from "prom-client";

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
}
