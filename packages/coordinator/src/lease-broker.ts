// Hands queued shards to worker sessions that have credit. One puller per model per
// replica takes jobs from the model's BullMQ queue (getNextJob with the lease id as token)
// and gives each to a session that still wants work. When the queue is empty it sleeps
// until a "work" event (shards queued or put back anywhere) or a poll.
//
// Which session: prefix affinity first, then round-robin. A shard with a prefix key
// (prefix-aware sharding) goes to the session that most recently took a shard of the
// same key among its last AFFINITY_KEYS keys, when that session wants work now: its
// engine probably still holds that prefix's KV blocks. Otherwise the next session in
// round-robin takes it. Affinity is a hint, never a wait: a shard always goes to some
// session that wants work at once, and since a session wants work only while it has
// credit (about 2x its engine's sequences), a busy session with affinity stops
// attracting shards once its credit is spent, and idle sessions get the rest.
//
// LoRA adapters: a shard whose lines name adapters (and no prefix affinity) goes to the
// session whose engine holds the most of them now (its heartbeats say which), so
// adapters are not read into another engine's memory; the same hint, never a wait.
import { newId, type Logger } from "@batchgen/core";
import type { JobStore, LeasedShard } from "./job-store.js";

/** busy: the shard was not ready to run (it was put back); back off a little. */
export type AssignResult = "leased" | "skipped" | "busy";

export interface LeaseTaker {
  readonly model: string;
  wantsWork(): boolean;
  /** LoRA adapters the worker's engine holds now (absent: none known). */
  readonly adaptersLoaded?: ReadonlySet<string>;
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
/** Prefix keys remembered per session for affinity. */
export const AFFINITY_KEYS = 8;

class ModelPuller {
  private readonly takers = new Set<LeaseTaker>();
  /** Per session: the prefix keys of its latest shards, newest first. */
  private readonly recentKeys = new Map<LeaseTaker, string[]>();
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
    this.recentKeys.delete(taker);
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
      if (!this.nextTaker(false)) {
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
      const taker = this.takerFor(shard);
      if (!taker) {
        // Every session stopped wanting work while the shard was being taken.
        await shard.release();
        continue;
      }
      const step = this.assign(taker, shard).finally(() => this.inFlight.delete(step));
      this.inFlight.add(step);
    }
    await Promise.allSettled(this.inFlight);
  }

  /** The session a shard goes to: affinity by prefix key, else round-robin (see the header). */
  private takerFor(shard: LeasedShard): LeaseTaker | null {
    const key = shard.data.prefixKey;
    let taker: LeaseTaker | null = null;
    if (key) {
      let best = AFFINITY_KEYS;
      for (const t of this.takers) {
        const at = this.recentKeys.get(t)?.indexOf(key) ?? -1;
        if (at >= 0 && at < best && t.wantsWork()) {
          best = at;
          taker = t;
        }
      }
    }
    taker ??= this.adapterTaker(shard.data.adapters) ?? this.nextTaker();
    if (taker && key) {
      const keys = (this.recentKeys.get(taker) ?? []).filter((k) => k !== key);
      keys.unshift(key);
      this.recentKeys.set(taker, keys.slice(0, AFFINITY_KEYS));
    }
    return taker;
  }

  /** The session that wants work and holds the most of `adapters`, if any holds one. */
  private adapterTaker(adapters: readonly string[] | undefined): LeaseTaker | null {
    if (!adapters || adapters.length === 0) return null;
    let best: LeaseTaker | null = null;
    let most = 0;
    for (const t of this.takers) {
      const held = t.adaptersLoaded;
      if (!held || held.size === 0) continue;
      const n = adapters.reduce((sum, a) => sum + (held.has(a) ? 1 : 0), 0);
      if (n > most && t.wantsWork()) {
        most = n;
        best = t;
      }
    }
    return best;
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
