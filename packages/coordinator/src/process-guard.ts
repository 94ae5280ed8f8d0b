// The last line of defence: an error that escaped every handler (a stream error nobody
// listened for, a promise nobody awaited) is logged and counted
// (batchgen_coordinator_uncaught_errors_total{kind}) instead of ending the process and
// every request and lease it serves. Each such error is a bug to fix; the metric makes it
// visible. Installed by start(), removed by stop().
import type { Logger } from "@batchgen/core";
import type { Counter } from "prom-client";

export class ProcessGuard {
  private readonly onException = (err: unknown): void => this.report("uncaught_exception", err);
  private readonly onRejection = (err: unknown): void => this.report("unhandled_rejection", err);
  private installed = false;

  constructor(
    private readonly logger: Logger,
    private readonly counter: Counter<"kind">,
  ) {}

  install(): void {
    if (this.installed) return;
    this.installed = true;
    process.on("uncaughtException", this.onException);
    process.on("unhandledRejection", this.onRejection);
  }

  uninstall(): void {
    if (!this.installed) return;
    this.installed = false;
    process.off("uncaughtException", this.onException);
    process.off("unhandledRejection", this.onRejection);
  }

  private report(kind: string, err: unknown): void {
    this.counter.inc({ kind });
    this.logger.error("error escaped every handler; the process keeps serving", { kind, err });
  }
}
