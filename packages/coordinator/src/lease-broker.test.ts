// Unit test of the lease broker with an in-memory queue double (no Redis).
import { createLogger } from "@batchgen/core";
import { describe, expect, it } from "vitest";
import type { JobStore, LeasedShard, ShardJobData } from "./job-store.js";
import { LeaseBroker, type AssignResult, type LeaseTaker } from "./lease-broker.js";

function shard(n: number, prefixKey?: string): LeasedShard {
  const data = { batchId: "b", shard: n, ...(prefixKey ? { prefixKey } : {}) } as ShardJobData;
  return { data, token: `t${n}`, extend: async () => true, complete: async () => true, release: async () => true, retryLater: async () => true };
}

class FakeQueue {
  items: LeasedShard[] = [];
  takes = 0;
  store = { takeShard: async () => (this.takes++, this.items.shift() ?? null) } as unknown as JobStore;
}

class Taker implements LeaseTaker {
  got: number[] = [];
  constructor(readonly model: string, public credit: number, private readonly result: AssignResult = "leased") {}
  wantsWork(): boolean {
    return this.credit > 0;
  }
  async assign(s: LeasedShard): Promise<AssignResult> {
    this.got.push(s.data.shard);
    this.credit--;
    return this.result;
  }
}

const logger = createLogger("test", { level: "silent" });
const tick = (ms = 30): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("LeaseBroker", () => {
  it("shares shards among sessions with credit with credit and stops when none wants more", async () => {
    const q = new FakeQueue();
    q.items = [0, 1, 2, 3, 4].map(shard);
    const broker = new LeaseBroker({ store: q.store, logger, pollMs: 1000 });
    const a = new Taker("m", 2);
    const b = new Taker("m", 2);
    broker.want(a);
    broker.want(b);
    await tick();
    expect(a.got).toHaveLength(2);
    expect(b.got).toHaveLength(2);
    expect([...a.got, ...b.got].sort()).toEqual([0, 1, 2, 3]);
    expect(q.items.map((s) => s.data.shard)).toEqual([4]);
    const takes = q.takes;
    await tick();
    expect(q.takes).toBe(takes); // no credit left: no more polling
    await broker.stop();
  });

  it("sleeps on an empty queue until woken", async () => {
    const q = new FakeQueue();
    const broker = new LeaseBroker({ store: q.store, logger, pollMs: 60_000 });
    const a = new Taker("m", 1);
    broker.want(a);
    await tick();
    expect(a.got).toEqual([]);
    q.items = [shard(7)];
    broker.wake("m");
    await tick();
    expect(a.got).toEqual([7]);
    await broker.stop();
  });

  it("puts a shard back when a session fails to take it", async () => {
    const q = new FakeQueue();
    const released: number[] = [];
    const s = shard(3);
    s.release = async () => (released.push(3), true);
    q.items = [s];
    const broker = new LeaseBroker({ store: q.store, logger, pollMs: 1000 });
    const failing: LeaseTaker = { model: "m", wantsWork: () => released.length === 0, assign: async () => Promise.reject(new Error("boom")) };
    broker.want(failing);
    await tick(100);
    expect(released).toEqual([3]);
    await broker.stop();
  });

  it("gives a shard to the session that served its prefix key recently, when it wants work", async () => {
    const q = new FakeQueue();
    const keys = ["k1", "k2", "k1", "k1", "k2", "k3", "k2", "k1", "k3"];
    q.items = keys.map((k, i) => shard(i, k));
    const broker = new LeaseBroker({ store: q.store, logger, pollMs: 1000 });
    const a = new Taker("m", 10);
    const b = new Taker("m", 10);
    broker.want(a);
    broker.want(b);
    await tick();
    // k1 -> a (round-robin), k2 -> b (round-robin), then every k1 to a and k2 to b;
    // k3, new, goes round-robin and then stays where it went.
    const keysOf = (t: Taker) => [...new Set(t.got.map((n) => keys[n]))];
    expect(a.got.length + b.got.length).toBe(keys.length);
    expect(keysOf(a).includes("k1") && !keysOf(b).includes("k1")).toBe(true);
    expect(keysOf(b).includes("k2") && !keysOf(a).includes("k2")).toBe(true);
    expect(keysOf(a).includes("k3") !== keysOf(b).includes("k3")).toBe(true);
    await broker.stop();
  });

  it("never starves an idle session: affinity lasts only while the affine session has credit", async () => {
    const q = new FakeQueue();
    q.items = Array.from({ length: 8 }, (_, i) => shard(i, "same"));
    const broker = new LeaseBroker({ store: q.store, logger, pollMs: 1000 });
    const busy = new Taker("m", 3);
    const idle = new Taker("m", 10);
    broker.want(busy);
    broker.want(idle);
    await tick();
    // All one key: the first session keeps it while it has credit, then the idle one gets the rest.
    expect(busy.got).toEqual([0, 1, 2]);
    expect(idle.got).toEqual([3, 4, 5, 6, 7]);
    await broker.stop();
  });

  it("shards without a key go round-robin, as before", async () => {
    const q = new FakeQueue();
    q.items = [0, 1, 2, 3].map((n) => shard(n));
    const broker = new LeaseBroker({ store: q.store, logger, pollMs: 1000 });
    const a = new Taker("m", 5);
    const b = new Taker("m", 5);
    broker.want(a);
    broker.want(b);
    await tick();
    expect(a.got).toEqual([0, 2]);
    expect(b.got).toEqual([1, 3]);
    await broker.stop();
  });

  it("prefers the session whose engine holds a shard's LoRA adapters, while it wants work", async () => {
    const q = new FakeQueue();
    const withAdapters = (n: number, adapters: string[]): LeasedShard => {
      const s = shard(n);
      (s.data as ShardJobData).adapters = adapters;
      return s;
    };
    q.items = [withAdapters(0, ["pirate"]), withAdapters(1, ["pirate", "legal"]), withAdapters(2, ["legal"]), withAdapters(3, ["pirate"]), withAdapters(4, ["pirate"])];
    const broker = new LeaseBroker({ store: q.store, logger, pollMs: 1000 });
    const plain = Object.assign(new Taker("m", 5), { adaptersLoaded: new Set<string>() });
    const pirate = Object.assign(new Taker("m", 3), { adaptersLoaded: new Set(["pirate"]) });
    const legal = Object.assign(new Taker("m", 5), { adaptersLoaded: new Set(["legal", "other"]) });
    broker.want(plain);
    broker.want(pirate);
    broker.want(legal);
    await tick();
    // Shard 1 (pirate + legal): a tie, the first holder wins; pirate's credit runs out
    // after three shards, and shard 4 goes round-robin (a hint, never a wait).
    expect(pirate.got).toEqual([0, 1, 3]);
    expect(legal.got).toEqual([2]);
    expect(plain.got).toEqual([4]);
    await broker.stop();
  });
});
