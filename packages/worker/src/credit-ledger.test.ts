import { describe, expect, it } from "vitest";
import { CreditLedger } from "./credit-ledger.js";

describe("CreditLedger", () => {
  it("asks for the whole target at first", () => {
    const l = new CreditLedger({ target: 64 });
    expect(l.takeGrant()).toBe(64);
    expect(l.outstanding).toBe(64);
    expect(l.takeGrant()).toBe(0); // already asked
  });

  it("does not ask again while the lines held are near the target", () => {
    const l = new CreditLedger({ target: 64 });
    l.takeGrant();
    l.onLease(64);
    expect(l.held).toBe(64);
    expect(l.outstanding).toBe(0);
    l.onSettled(3); // 61 held: a shortfall of 3 < minGrant (8) and above low water
    expect(l.takeGrant()).toBe(0);
    l.onSettled(5); // 56 held: shortfall 8
    expect(l.takeGrant()).toBe(8);
  });

  it("asks before the worker runs dry across shard boundaries", () => {
    // maxSeqs 32, target 64, shards of 100 lines: the credit goes negative after a lease,
    // and the next Credit covers that debt so a shard comes while ~half the target is still held.
    const l = new CreditLedger({ target: 64 });
    expect(l.takeGrant()).toBe(64);
    l.onLease(100);
    expect(l.outstanding).toBe(-36);
    let asked = -1;
    for (let held = 100; held > 0; held--) {
      const grant = l.takeGrant();
      if (grant > 0) {
        asked = l.held;
        // After the grant, the coordinator's credit equals the shortfall: exactly one shard comes.
        expect(l.outstanding).toBe(64 - l.held);
        break;
      }
      l.onSettled(1);
    }
    expect(asked).toBeGreaterThanOrEqual(32);
    expect(asked).toBeLessThan(64);
  });

  it("asks for any shortfall below low water", () => {
    const l = new CreditLedger({ target: 64, minGrant: 50, lowWater: 10 });
    l.takeGrant();
    l.onLease(64);
    l.onSettled(60); // 4 held, below low water
    expect(l.takeGrant()).toBe(60);
  });

  it("below low water, waits for a full grant while the coordinator still holds credit", () => {
    const l = new CreditLedger({ target: 64 }); // minGrant 8, lowWater 32
    expect(l.takeGrant()).toBe(64);
    l.onLease(20); // 20 held, the coordinator still holds 44 of credit
    for (let i = 0; i < 7; i++) {
      l.onSettled(1);
      expect(l.takeGrant()).toBe(0);
    }
    l.onSettled(1);
    expect(l.takeGrant()).toBe(8);
    expect(l.outstanding).toBe(64 - l.held);
  });

  it("never asks once stopped (drain) and starts fresh after reset (new session)", () => {
    const l = new CreditLedger({ target: 8 });
    l.takeGrant();
    l.onLease(8);
    l.onSettled(8);
    l.stop();
    expect(l.takeGrant()).toBe(0);
    const m = new CreditLedger({ target: 8 });
    m.takeGrant();
    m.onLease(5);
    m.reset();
    expect(m.held).toBe(0);
    expect(m.outstanding).toBe(0);
    expect(m.takeGrant()).toBe(8);
  });

  it("rejects a nonsensical target", () => {
    expect(() => new CreditLedger({ target: 0 })).toThrow(RangeError);
  });
});
