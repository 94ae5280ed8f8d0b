// Unit test of the lease broker with an in-memory queue double (no Redis).
import { createLogger } from "@batchgen/core";
import { describe, expect, it } from "vitest";
import type { JobStore, LeasedShard, ShardJobData } from "./job-store.js";
import { LeaseBroker, type AssignResult, type LeaseTaker } from "./lease-broker.js";

function shard(n: number): LeasedShard {
  const data = { batchId: "b", shard: n } as ShardJobData;
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
});
