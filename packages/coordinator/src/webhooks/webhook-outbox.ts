// Where batch webhook events wait for delivery, behind one interface (its only
// implementation is redis/redis-webhook-outbox.ts). A batch enters the outbox in the same
// atomic step that moves it to a terminal status (lua/transition-batch.lua); the
// dispatcher claims due events, delivers them and records each attempt here.

export type WebhookStatus = "pending" | "delivered" | "failed" | "skipped";

/** The delivery of one batch's terminal event. */
export interface WebhookDelivery {
  status: WebhookStatus;
  attempts: number;
  lastError: string | null;
  /** When it was last tried / delivered (ms). */
  lastAttemptAtMs: number | null;
  deliveredAtMs: number | null;
}

export interface WebhookOutbox {
  /** Batch ids whose event is due at nowMs, each claimed for claimMs (no other replica takes it meanwhile). */
  claimDue(nowMs: number, claimMs: number, limit: number): Promise<string[]>;
  /** The delivery record of a batch's event, or null if no attempt was recorded. */
  get(batchId: string): Promise<WebhookDelivery | null>;
  /** Records an attempt: retry at nextAtMs, or (null) done — out of the outbox, the record kept a while. */
  record(batchId: string, delivery: WebhookDelivery, nextAtMs: number | null): Promise<void>;
}
