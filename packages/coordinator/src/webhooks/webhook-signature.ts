// Standard Webhooks signatures, as OpenAI signs its webhooks: headers webhook-id,
// webhook-timestamp (unix seconds) and webhook-signature "v1,<base64 HMAC-SHA256>" of
// "<id>.<timestamp>.<body>", keyed with the base64 bytes after "whsec_" of the secret.
import { createHmac } from "node:crypto";

const SECRET = /^whsec_([A-Za-z0-9+/]+={0,2})$/;

/** The key bytes of a "whsec_<base64>" secret; null when it is not one (or under 16 bytes). */
export function webhookSecretKey(secret: string): Buffer | null {
  const m = SECRET.exec(secret);
  if (!m) return null;
  const key = Buffer.from(m[1]!, "base64");
  return key.length >= 16 ? key : null;
}

export function webhookHeaders(secret: string, id: string, timestampSec: number, body: string): Record<string, string> {
  const key = webhookSecretKey(secret);
  if (!key) throw new Error("a webhook secret is whsec_ and at least 16 base64 bytes");
  const signature = createHmac("sha256", key).update(`${id}.${timestampSec}.${body}`).digest("base64");
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestampSec),
    "webhook-signature": `v1,${signature}`,
  };
}
