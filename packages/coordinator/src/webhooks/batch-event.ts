// OpenAI's batch webhook events: batch.completed, batch.failed, batch.expired and
// batch.cancelled, each { id, object: "event", created_at, type, data: { id } }.
// The event id is derived from the batch id, so every attempt (from any replica) sends
// the same event and a receiver can deduplicate by webhook-id.
import type { BatchStatus } from "@batchgen/core";
import type { BatchRecord } from "../job-store.js";

export type BatchEventType = "batch.completed" | "batch.failed" | "batch.expired" | "batch.cancelled";

export interface BatchEvent {
  id: string;
  object: "event";
  /** Unix seconds when the batch reached the status. */
  created_at: number;
  type: BatchEventType;
  data: { id: string };
}

const TYPES: Partial<Record<BatchStatus, BatchEventType>> = {
  completed: "batch.completed",
  failed: "batch.failed",
  expired: "batch.expired",
  cancelled: "batch.cancelled",
};

/** The event of a batch in a terminal status; null for any other status. */
export function batchEvent(batch: BatchRecord): BatchEvent | null {
  const type = TYPES[batch.status];
  if (!type) return null;
  const atMs = { completed: batch.completedAtMs, failed: batch.failedAtMs, expired: batch.expiredAtMs, cancelled: batch.cancelledAtMs }[
    batch.status as "completed" | "failed" | "expired" | "cancelled"
  ];
  return {
    id: `evt_${batch.id.replace(/^batch_/, "")}`,
    object: "event",
    created_at: Math.floor((atMs ?? batch.createdAtMs) / 1000),
    type,
    data: { id: batch.id },
  };
}
