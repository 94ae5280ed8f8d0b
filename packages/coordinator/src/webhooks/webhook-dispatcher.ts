// Delivers batch events to tenants' webhook URLs, at least once: every replica polls the
// outbox for due events (claimed for webhookClaimMs, so a replica that dies mid-delivery
// leaves the event to come due again), POSTs the signed event, and records the attempt —
// delivered on a 2xx, else retried with exponential backoff until webhookMaxAttempts.
import type { Logger } from "@batchgen/core";
import type { Counter } from "prom-client";
import type { CoordinatorConfig } from "../coordinator-config.js";
import type { JobStore } from "../job-store.js";
import { batchEvent } from "./batch-event.js";
import type { WebhookDelivery, WebhookOutbox } from "./webhook-outbox.js";
import { webhookHeaders } from "./webhook-signature.js";

type WebhookSettings = Pick<
  CoordinatorConfig,
  "webhooks" | "webhookMaxAttempts" | "webhookRetryMinMs" | "webhookRetryMaxMs" | "webhookTimeoutMs" | "webhookClaimMs" | "webhookPollMs"
>;

export interface WebhookDispatcherDeps {
  store: JobStore;
  outbox: WebhookOutbox;
  config: WebhookSettings;
  logger: Logger;
  /** Attempts by outcome (delivered, retry, failed). */
  deliveries: Counter<"outcome">;
}

const CLAIM_BATCH = 20;

export class WebhookDispatcher {
  private readonly hooks: Map<string, { url: string; secret: string }>;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(private readonly deps: WebhookDispatcherDeps) {
    this.hooks = new Map(deps.config.webhooks.map((w) => [w.tenant, { url: w.url, secret: w.secret }]));
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.running ??= this.tick().finally(() => (this.running = null));
    }, this.deps.config.webhookPollMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One round: claim what is due and try each (exported for tests through start/stop only). */
  private async tick(): Promise<void> {
    try {
      const ids = await this.deps.outbox.claimDue(Date.now(), this.deps.config.webhookClaimMs, CLAIM_BATCH);
      await Promise.all(ids.map((id) => this.deliver(id)));
    } catch (err) {
      this.deps.logger.warn("webhook round failed", { error: (err as Error).message });
    }
  }

  private async deliver(batchId: string): Promise<void> {
    const { store, outbox, config, logger } = this.deps;
    const batch = await store.getBatch(batchId);
    const event = batch ? batchEvent(batch) : null;
    const hook = batch ? this.hooks.get(batch.tenant) : undefined;
    const previous = await outbox.get(batchId);
    if (!event || !hook) {
      // No webhook for this tenant (or the batch is gone): nothing to send.
      await outbox.record(batchId, { ...(previous ?? emptyDelivery()), status: "skipped" }, null);
      return;
    }
    const attempts = (previous?.attempts ?? 0) + 1;
    const now = Date.now();
    const body = JSON.stringify(event);
    let error: string | null = null;
    try {
      const res = await fetch(hook.url, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": "batchgen-webhooks/0.1", ...webhookHeaders(hook.secret, event.id, Math.floor(now / 1000), body) },
        body,
        signal: AbortSignal.timeout(config.webhookTimeoutMs),
        redirect: "manual",
      });
      // Only the status matters: a body that fails to drain changes nothing about the delivery.
      await res.body?.cancel().catch(() => undefined);
      if (res.status < 200 || res.status >= 300) error = `HTTP ${res.status}`;
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      error = e.name === "TimeoutError" ? `no answer in ${config.webhookTimeoutMs} ms` : (e.cause?.code ?? e.message);
    }
    const d: WebhookDelivery = { status: "delivered", attempts, lastError: error, lastAttemptAtMs: now, deliveredAtMs: error ? null : Date.now() };
    if (!error) {
      this.deps.deliveries.inc({ outcome: "delivered" });
      logger.info("webhook delivered", { batch_id: batchId, type: event.type, attempts });
      await outbox.record(batchId, d, null);
    } else if (attempts >= config.webhookMaxAttempts) {
      this.deps.deliveries.inc({ outcome: "failed" });
      logger.warn("webhook gave up", { batch_id: batchId, type: event.type, attempts, error });
      await outbox.record(batchId, { ...d, status: "failed" }, null);
    } else {
      this.deps.deliveries.inc({ outcome: "retry" });
      const delay = retryDelayMs(attempts, config.webhookRetryMinMs, config.webhookRetryMaxMs);
      logger.info("webhook attempt failed; retrying", { batch_id: batchId, type: event.type, attempts, error, retry_in_ms: delay });
      await outbox.record(batchId, { ...d, status: "pending" }, Date.now() + delay);
    }
  }
}

/** Exponential backoff from min (after the first failure) to max, with up to 10% jitter. */
export function retryDelayMs(failures: number, minMs: number, maxMs: number): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(failures - 1, 30));
  return Math.round(base * (1 + Math.random() * 0.1));
}

function emptyDelivery(): WebhookDelivery {
  return { status: "pending", attempts: 0, lastError: null, lastAttemptAtMs: null, deliveredAtMs: null };
}
