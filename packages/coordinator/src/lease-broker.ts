// Hands queued shards to worker sessions that have credit. One puller per model per
// replica takes jobs from the model's BullMQ queue (getNextJob with the lease id as token)
// and gives each to the next session in round-robin that still wants work. When the queue
// is empty it sleeps until a "work" event (shards queued or put back anywhere) or a poll.
import { newId, type Logger } from "@batchgen/core";
import type { JobStore, LeasedShard } from "./job-store.js";

/** busy: the shard was not ready to run (it was put back); back off a little. */
export type AssignResult = "leased" | "skipped" | "busy";

export interface LeaseTaker {
  readonly model: string;
  wantsWork(): boolean;
  /**
   * Take over the shard: lease it, finish it, or put it back. Several may run at once, so
   * a taker reserves the shard's lines from its credit before its first await.
   */
  assign(shard: LeasedShard): Promise<AssignResult>;
}

export interface LeaseBrokerOptions {
  store: JobStore;
  logger: Logger;
  pollMs: number;
}

export class LeaseBroker {
  private readonly pullers = new Map<string, ModelPuller>();
  private stopped = false;

  constructor(private readonly opts: LeaseBrokerOptions) {}

  want(taker: LeaseTaker): void {
    if (this.stopped) return;
    let p = this.pullers.get(taker.model);
    if (!p) {
      p = new ModelPuller(taker.model, this.opts);
      this.pullers.set(taker.model, p);
    }
    p.add(taker);
  }

  forget(taker: LeaseTaker): void {
    this.pullers.get(taker.model)?.remove(taker);
  }

  wake(model: string): void {
    this.pullers.get(model)?.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.pullers.values()].map((p) => p.stop()));
  }
}

/** Shards being handed over at once per model (each reads its byte range and done bits). */
const MAX_ASSIGNS_IN_FLIGHT = 4;

class ModelPuller {
  private readonly takers = new Set<LeaseTaker>();
  private readonly inFlight = new Set<Promise<void>>();
  private loop: Promise<void> | null = null;
  private woken = false;
  private wakeSleeper: (() => void) | null = null;
  private stopped = false;

  constructor(
    readonly model: string,
    private readonly opts: LeaseBrokerOptions,
  ) {}

  add(taker: LeaseTaker): void {
    this.takers.add(taker);
    this.kick();
  }

  remove(taker: LeaseTaker): void {
    this.takers.delete(taker);
  }

  wake(): void {
    this.woken = true;
    this.wakeSleeper?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeSleeper?.();
    await this.loop;
  }

  private kick(): void {
    if (this.loop || this.stopped) return;
    this.loop = this.run()
      .catch((err: unknown) => this.opts.logger.error("lease puller failed", { model: this.model, err }))
      .finally(() => {
        this.loop = null;
        if (!this.stopped && this.nextTaker(false)) this.kick();
      });
  }

  /** The next session that wants work, rotated to the back (round-robin). */
  private nextTaker(rotate = true): LeaseTaker | null {
    for (const t of this.takers) {
      if (!t.wantsWork()) {
        this.takers.delete(t);
        continue;
      }
      if (rotate) {
        this.takers.delete(t);
        this.takers.add(t);
      }
      return t;
    }
    return null;
  }

  private async run(): Promise<void> {
    const { store, logger, pollMs } = this.opts;
    while (!this.stopped) {
      if (this.inFlight.size >= MAX_ASSIGNS_IN_FLIGHT) {
        await Promise.race(this.inFlight);
        continue;
      }
      const taker = this.nextTaker();
      if (!taker) {
        // Assigns under way may hand credit back (a shard with nothing left to run).
        if (this.inFlight.size === 0) return;
        await Promise.race(this.inFlight);
        continue;
      }
      this.woken = false;
      let shard: LeasedShard | null;
      try {
        shard = await store.takeShard(this.model, newId("lease"));
      } catch (err) {
        logger.warn("taking a shard failed", { model: this.model, err });
        await this.sleep(pollMs);
        continue;
      }
      if (!shard) {
        if (!this.woken) await this.sleep(pollMs);
        continue;
      }
      const step = this.assign(taker, shard).finally(() => this.inFlight.delete(step));
      this.inFlight.add(step);
    }
    await Promise.allSettled(this.inFlight);
  }

  /** Hand one shard over; reading it and telling the worker overlap with taking the next. */
  private async assign(taker: LeaseTaker, shard: LeasedShard): Promise<void> {
    let result: AssignResult;
    try {
      result = await taker.assign(shard);
    } catch (err) {
      this.opts.logger.warn("leasing a shard failed; it goes back to the queue", { model: this.model, err });
      await shard.release();
      result = "busy";
    }
    if (result === "busy") await new Promise((r) => setTimeout(r, Math.min(this.opts.pollMs, 50)));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakeSleeper = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeSleeper = done;
    });
  }
}
