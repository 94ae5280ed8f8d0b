// A set of accepted secrets (worker tokens, metrics keys), compared in constant time:
// each candidate and each secret is hashed (SHA-256) so lengths never differ, and every
// secret is compared with crypto.timingSafeEqual, so neither the match nor where it
// stopped matching shows in the time taken. Several secrets at once allow rotation:
// add the new one, move every client over, drop the old one.
import { createHash, timingSafeEqual } from "node:crypto";

function digest(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

export class SecretSet {
  private readonly digests: Buffer[];

  constructor(secrets: readonly string[]) {
    this.digests = secrets.filter((s) => s !== "").map(digest);
  }

  get size(): number {
    return this.digests.length;
  }

  /** True when `candidate` equals one of the secrets (every secret is compared). */
  has(candidate: string | undefined): boolean {
    if (candidate === undefined) return false;
    const d = digest(candidate);
    let found = false;
    for (const s of this.digests) found = timingSafeEqual(d, s) || found;
    return found;
  }

  /** The token of an `Authorization: Bearer <token>` header, checked; false when absent or wrong. */
  hasBearer(authorization: string | undefined): boolean {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
    return m !== null && this.has(m[1]);
  }
}
