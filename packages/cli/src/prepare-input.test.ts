import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkReadable, firstLineEndpoint, withModel } from "./prepare-input.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "bg-prep-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("prepare-input", () => {
  it("reads the endpoint from the first request line", async () => {
    const p = join(dir, "a.jsonl");
    await writeFile(p, '\n{"custom_id":"a","method":"POST","url":"/v1/completions","body":{}}\n{"url":"/v1/chat/completions"}\n');
    expect(await firstLineEndpoint(p)).toBe("/v1/completions");
    await writeFile(p, "not json\n");
    expect(await firstLineEndpoint(p)).toBeNull();
  });

  it("sets body.model on every JSON line and leaves other lines for the coordinator to report", async () => {
    const p = join(dir, "b.jsonl");
    await writeFile(
      p,
      [
        JSON.stringify({ custom_id: "1", method: "POST", url: "/v1/chat/completions", body: { model: "old", messages: [], temperature: 0 } }),
        "{broken",
        JSON.stringify({ custom_id: "2", method: "POST", url: "/v1/chat/completions", body: { messages: [] } }),
      ].join("\n") + "\n",
    );
    const out = await withModel(p, "tiny-gemma");
    try {
      const lines = (await readFile(out, "utf8")).split("\n");
      expect(JSON.parse(lines[0]!)).toEqual({ custom_id: "1", method: "POST", url: "/v1/chat/completions", body: { model: "tiny-gemma", messages: [], temperature: 0 } });
      expect(lines[1]).toBe("{broken");
      expect(JSON.parse(lines[2]!).body.model).toBe("tiny-gemma");
    } finally {
      await rm(dirname(out), { recursive: true, force: true });
    }
  });

  it("says so when the file is missing", async () => {
    await expect(checkReadable(join(dir, "missing.jsonl"))).rejects.toThrow(/cannot read .*missing\.jsonl: no such file/);
  });
});
