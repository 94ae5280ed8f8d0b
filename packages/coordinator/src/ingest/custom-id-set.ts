// The custom_ids seen so far in one input file, kept compact enough for millions of
// lines: short ids as themselves, long ones as a SHA-256 digest (collision-free in
// practice), each tagged so the two kinds never collide with each other.
import { createHash } from "node:crypto";

const INLINE_MAX = 48;

export class CustomIdSet {
  private readonly seen = new Set<string>();

  /** False when the id was added before. */
  add(customId: string): boolean {
    const key =
      customId.length <= INLINE_MAX ? "r" + customId : "h" + createHash("sha256").update(customId).digest("base64");
    if (this.seen.has(key)) return false;
    this.seen.add(key);
    return true;
  }

  get size(): number {
    return this.seen.size;
  }
}
