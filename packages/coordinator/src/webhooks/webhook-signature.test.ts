import { describe, expect, it } from "vitest";
import { webhookHeaders, webhookSecretKey } from "./webhook-signature.js";

describe("webhook signatures (Standard Webhooks)", () => {
  it("match the specification's reference vector", () => {
    // From the Standard Webhooks specification's example (standard-webhooks/spec.md).
    const h = webhookHeaders("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}');
    expect(h).toEqual({
      "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
      "webhook-timestamp": "1614265330",
      "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    });
  });

  it("accept only whsec_ secrets of at least 16 bytes", () => {
    expect(webhookSecretKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?.length).toBe(24);
    expect(webhookSecretKey("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).toBeNull();
    expect(webhookSecretKey("whsec_c2hvcnQ=")).toBeNull();
    expect(webhookSecretKey("whsec_not base64!")).toBeNull();
    expect(() => webhookHeaders("whsec_", "id", 1, "{}")).toThrow(/whsec_/);
  });
});
