// How much work to ask the coordinator for, so the engine never runs dry at a shard
// boundary: the worker aims to hold `target` lines (about twice the engine's max_seqs:
// one engine-full running, one waiting) and asks for more well before it is empty.
//
// Protocol (protocol.md): each Credit adds to the worker's outstanding credit at the
// coordinator; the coordinator leases a whole shard whenever that credit is > 0 and
// subtracts the shard's line count, so the credit can go negative (a debt the next
// Credit must cover before another shard comes).
export interface CreditLedgerOptions {
  /** Lines the worker wants to hold (leased, not yet finished). */
  target: number;
  /**
   * Below this many held lines any shortfall is asked for at once while the coordinator
   * holds no credit of this worker (it would lease nothing); default target / 2.
   */
  lowWater?: number;
  /** Above lowWater, shortfalls smaller than this wait (fewer, larger Credits); default target / 8. */
  minGrant?: number;
}

export class CreditLedger {
  readonly target: number;
  private readonly lowWater: number;
  private readonly minGrant: number;
  private heldLines = 0;
  private outstandingCredit = 0;
  private stopped = false;

  constructor(opts: CreditLedgerOptions) {
    if (!Number.isInteger(opts.target) || opts.target < 1) throw new RangeError(`credit target must be a positive integer, got ${opts.target}`);
    this.target = opts.target;
    this.lowWater = opts.lowWater ?? Math.ceil(opts.target / 2);
    this.minGrant = Math.max(1, opts.minGrant ?? Math.ceil(opts.target / 8));
  }

  /** Lines leased and not yet settled (finished, failed, cancelled or released). */
  get held(): number {
    return this.heldLines;
  }

  /** Credit granted and not yet used by a lease, as the coordinator sees it (may be < 0). */
  get outstanding(): number {
    return this.outstandingCredit;
  }

  onLease(lines: number): void {
    this.heldLines += lines;
    this.outstandingCredit -= lines;
  }

  onSettled(lines = 1): void {
    this.heldLines = Math.max(0, this.heldLines - lines);
  }

  /**
   * The Credit to send now, or 0. Counts it as sent. After it, the coordinator's
   * outstanding credit is exactly what brings held lines up to the target.
   */
  takeGrant(): number {
    if (this.stopped) return 0;
    const wanted = this.target - this.heldLines;
    if (wanted <= 0) return 0;
    const grant = wanted - this.outstandingCredit;
    if (grant <= 0) return 0;
    // A small grant waits unless the worker is low and the coordinator holds no credit of
    // it. While the coordinator's credit is > 0 it leases a whole shard as soon as it has
    // one, so a Credit per finished line (an instant engine below low water) adds nothing.
    if (grant < this.minGrant && (this.heldLines >= this.lowWater || this.outstandingCredit > 0)) return 0;
    this.outstandingCredit += grant;
    return grant;
  }

  /** Drain: never ask for more. */
  stop(): void {
    this.stopped = true;
  }

  /** A fresh session: the coordinator knows nothing of earlier credit or leases. */
  reset(): void {
    this.heldLines = 0;
    this.outstandingCredit = 0;
  }
}
