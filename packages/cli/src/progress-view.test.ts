import { describe, expect, it } from "vitest";
import type { Batch } from "./api-client.js";
import { createProgressView } from "./progress-view.js";

function sink() {
  const lines: string[] = [];
  const stream = { isTTY: false, write: (s: string) => lines.push(s) } as unknown as NodeJS.WriteStream;
  return { lines, stream };
}

const at = (status: string, completed: number, eta: number | null = 10): Batch =>
  ({
    id: "b",
    status,
    request_counts: { total: 8, completed, failed: 0 },
    progress: { lines_done: completed, prompt_tokens: 0, completion_tokens: 0, tokens_per_second: 42, eta_seconds: eta },
  }) as unknown as Batch;

describe("progress view without a terminal", () => {
  it("writes a line per status change and at most one every few seconds otherwise", () => {
    const { lines, stream } = sink();
    const view = createProgressView(stream);
    view.update(at("validating", 0, null));
    view.update(at("in_progress", 1));
    view.update(at("in_progress", 2)); // too soon after the last line
    view.update(at("completed", 8));
    view.stop();
    expect(lines).toEqual([
      "validating: 0/8 lines, 42.0 tok/s, ETA -\n",
      "in_progress: 1/8 lines, 42.0 tok/s, ETA 10s\n",
      "completed: 8/8 lines, 42.0 tok/s, ETA -\n",
    ]);
  });
});
