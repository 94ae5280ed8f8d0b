import { describe, expect, it } from "vitest";
import { parseFlags } from "./parse-flags.js";

describe("parseFlags", () => {
  const known = ["httpPort", "redisUrl", "apiKeys"];
  it("maps --kebab-case flags to schema keys", () => {
    expect(parseFlags(["--http-port", "80", "--redis-url=redis://x:1", "--api-keys", "a:b"], known)).toEqual({
      flags: { httpPort: "80", redisUrl: "redis://x:1", apiKeys: "a:b" },
      help: false,
    });
    expect(parseFlags(["--help"], known).help).toBe(true);
  });
  it("takes switches alone or with a boolean word", () => {
    const sw = ["insecureWorkers"];
    const all = [...known, "insecureWorkers"];
    expect(parseFlags(["--insecure-workers", "--http-port", "1"], all, sw).flags).toEqual({ insecureWorkers: "true", httpPort: "1" });
    expect(parseFlags(["--insecure-workers", "false"], all, sw).flags).toEqual({ insecureWorkers: "false" });
    expect(parseFlags(["--insecure-workers"], all, sw).flags).toEqual({ insecureWorkers: "true" });
  });
  it("rejects unknown flags, stray arguments and missing values", () => {
    expect(() => parseFlags(["--nope", "1"], known)).toThrow(/unknown flag --nope/);
    expect(() => parseFlags(["stray"], known)).toThrow(/unexpected argument/);
    expect(() => parseFlags(["--http-port"], known)).toThrow(/needs a value/);
  });
});
