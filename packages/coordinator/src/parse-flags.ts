// Command-line flags (--http-port 8080, --http-port=8080) as an object keyed like the
// config schema (httpPort); values stay strings for loadConfig to coerce. A switch (a
// key in `switches`) may stand alone (--insecure-workers) or take true/false.
import { BatchgenError } from "@batchgen/core";

function camel(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

const BOOLEAN_WORDS = /^(true|false|1|0|yes|no|on|off)$/i;

export function parseFlags(
  argv: readonly string[],
  known: readonly string[],
  switches: readonly string[] = [],
): { flags: Record<string, unknown>; help: boolean } {
  const flags: Record<string, unknown> = {};
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") {
      help = true;
      continue;
    }
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new BatchgenError("invalid_request", `unexpected argument ${JSON.stringify(arg)} (flags look like --http-port 8080)`);
    const key = camel(m[1]!);
    if (!known.includes(key)) throw new BatchgenError("invalid_request", `unknown flag --${m[1]} (see --help)`);
    if (m[2] !== undefined) {
      flags[key] = m[2];
    } else if (switches.includes(key)) {
      const next = argv[i + 1];
      if (next !== undefined && BOOLEAN_WORDS.test(next)) {
        flags[key] = next;
        i++;
      } else flags[key] = "true";
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith("--")) throw new BatchgenError("invalid_request", `flag --${m[1]} needs a value`);
      flags[key] = next;
      i++;
    }
  }
  return { flags, help };
}
