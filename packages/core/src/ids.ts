// Object ids: `<prefix>_<12 hex of ms time><20 hex random>`. Fixed width, so ids of one
// prefix sort by creation time (to the millisecond) as plain strings; 80 random bits make
// collisions negligible across coordinator replicas.
import { randomBytes } from "node:crypto";

export type IdPrefix = "batch" | "file" | "req" | "lease";

const TIME_HEX = 12;
const RANDOM_BYTES = 10;

export function newId(prefix: IdPrefix, now: number = Date.now()): string {
  const time = Math.max(0, Math.floor(now)).toString(16).padStart(TIME_HEX, "0");
  return `${prefix}_${time}${randomBytes(RANDOM_BYTES).toString("hex")}`;
}

const ID_PATTERN = /^(batch|file|req|lease)_([0-9a-f]{12})[0-9a-f]{20}$/;

/** True if `id` has the form newId gives, optionally of the given prefix. */
export function isId(id: string, prefix?: IdPrefix): boolean {
  const m = ID_PATTERN.exec(id);
  return m !== null && (prefix === undefined || m[1] === prefix);
}

/** Milliseconds since the epoch at which the id was made, or null for a foreign id. */
export function idTimestamp(id: string): number | null {
  const m = ID_PATTERN.exec(id);
  return m ? parseInt(m[2]!, 16) : null;
}
