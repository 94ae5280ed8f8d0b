// Reads what `submit` needs from an input file without holding it in memory: the
// endpoint of its first line, and (with --model) a copy with every line's body.model
// set. Lines that are not JSON are copied as they are, so the coordinator reports them
// with their line numbers.
import { createReadStream, createWriteStream } from "node:fs";
import { access, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { createInterface } from "node:readline";
import { finished } from "node:stream/promises";
import { CliError } from "./cli-error.js";

export async function checkReadable(path: string): Promise<void> {
  try {
    await access(path);
  } catch {
    throw new CliError(`cannot read ${path}: no such file.`);
  }
}

/** The `url` of the first non-empty line, if it is JSON with one. */
export async function firstLineEndpoint(path: string): Promise<string | null> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      if (line.trim() === "") continue;
      try {
        const url = (JSON.parse(line) as { url?: unknown }).url;
        return typeof url === "string" ? url : null;
      } catch {
        return null;
      }
    }
    return null;
  } finally {
    lines.close();
  }
}

/** A temporary copy of the file with body.model = model on every JSON line. */
export async function withModel(path: string, model: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "batchgen-submit-"));
  const out = join(dir, basename(path));
  const writer = createWriteStream(out);
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  for await (const line of lines) {
    let text = line;
    try {
      const parsed = JSON.parse(line) as { body?: unknown };
      if (parsed && typeof parsed === "object" && parsed.body && typeof parsed.body === "object" && !Array.isArray(parsed.body)) {
        (parsed.body as Record<string, unknown>).model = model;
        text = JSON.stringify(parsed);
      }
    } catch {
      // not JSON: left for the coordinator to report
    }
    if (!writer.write(text + "\n")) await new Promise<void>((r) => writer.once("drain", () => r()));
  }
  writer.end();
  await finished(writer);
  return out;
}
