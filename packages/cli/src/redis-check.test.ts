import { describe, expect, it } from "vitest";
import { freePort } from "./free-port.js";
import { checkRedis } from "./redis-check.js";

describe("checkRedis", () => {
  it("accepts a Redis that answers PING", async () => {
    // The test run's own redis-server (test/support/global-setup.ts).
    await expect(checkRedis(process.env.REDIS_URL!)).resolves.toBeUndefined();
  });

  it("says clearly when nothing listens or the URL is wrong", async () => {
    const port = await freePort();
    await expect(checkRedis(`redis://127.0.0.1:${port}`)).rejects.toThrow(
      `cannot reach Redis at redis://127.0.0.1:${port} (ECONNREFUSED). Start it, fix REDIS_URL, or unset REDIS_URL so batchgen up starts its own.`,
    );
    await expect(checkRedis("localhost:6379")).rejects.toThrow(/must start with redis:\/\//);
    await expect(checkRedis("not a url")).rejects.toThrow(/REDIS_URL is not a URL/);
  });

  it("reports a password Redis refuses", async () => {
    await expect(checkRedis(`${process.env.REDIS_URL!.replace("redis://", "redis://:wrong@")}`)).rejects.toThrow(/refused: ERR AUTH|refused: .*(password|AUTH)/i);
  });
});
