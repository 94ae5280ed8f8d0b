// API keys to tenants: `Authorization: Bearer <key>` names the tenant whose files and
// batches a request sees. With no keys configured, every request is tenant "default".
import { BatchgenError } from "@batchgen/core";

export const DEFAULT_TENANT = "default";

export class TenantAuth {
  private readonly tenants: Map<string, string>;

  constructor(keys: ReadonlyArray<{ key: string; tenant: string }>) {
    this.tenants = new Map(keys.map((k) => [k.key, k.tenant]));
  }

  get open(): boolean {
    return this.tenants.size === 0;
  }

  /** The tenant of an Authorization header; throws unauthenticated. */
  tenantOf(authorization: string | undefined): string {
    if (this.open) return DEFAULT_TENANT;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
    if (!m) {
      throw new BatchgenError(
        "unauthenticated",
        "You didn't provide an API key. Provide it in an Authorization header (Authorization: Bearer YOUR_KEY).",
        { reason: "missing_api_key" },
      );
    }
    const tenant = this.tenants.get(m[1]!);
    if (!tenant) throw new BatchgenError("unauthenticated", "Incorrect API key provided.", { reason: "invalid_api_key" });
    return tenant;
  }
}
