// Progress of a batch while `submit --wait` waits: a bar (lines, tok/s, ETA) on a
// terminal; on anything else (CI logs, pipes) a plain line when something changes,
// at most every few seconds.
import cliProgress from "cli-progress";
import type { Batch } from "./api-client.js";
import { formatDuration } from "./batch-format.js";

export interface ProgressView {
  update(batch: Batch): void;
  stop(): void;
}

export function createProgressView(stream: NodeJS.WriteStream = process.stderr): ProgressView {
  return stream.isTTY ? new BarView(stream) : new LineView(stream);
}

function figures(b: Batch) {
  const total = b.request_counts.total;
  const done = b.request_counts.completed + b.request_counts.failed;
  const tps = b.progress?.tokens_per_second ?? 0;
  const eta = b.status === "in_progress" ? formatDuration(b.progress?.eta_seconds) : "-";
  return { total, done, tps, eta };
}

class BarView implements ProgressView {
  private readonly bar: cliProgress.SingleBar;
  private started = false;

  constructor(stream: NodeJS.WriteStream) {
    this.bar = new cliProgress.SingleBar(
      {
        stream,
        format: "{bar} {percentage}% | {value}/{total} lines | {tps} tok/s | ETA {eta} | {status}",
        hideCursor: true,
        clearOnComplete: false,
        barsize: 30,
      },
      cliProgress.Presets.shades_classic,
    );
  }

  update(b: Batch): void {
    const f = figures(b);
    const payload = { tps: f.tps.toFixed(1), eta: f.eta, status: b.status };
    if (!this.started) {
      this.bar.start(Math.max(f.total, 1), f.done, payload);
      this.started = true;
    } else {
      this.bar.setTotal(Math.max(f.total, 1));
      this.bar.update(f.done, payload);
    }
  }

  stop(): void {
    if (this.started) this.bar.stop();
  }
}

class LineView implements ProgressView {
  private last = "";
  private lastAt = 0;

  constructor(private readonly stream: NodeJS.WritableStream) {}

  update(b: Batch): void {
    const f = figures(b);
    const line = `${b.status}: ${f.done}/${f.total} lines, ${f.tps.toFixed(1)} tok/s, ETA ${f.eta}`;
    const statusChanged = !this.last.startsWith(`${b.status}:`);
    if (line === this.last || (!statusChanged && Date.now() - this.lastAt < 3_000)) return;
    this.stream.write(line + "\n");
    this.last = line;
    this.lastAt = Date.now();
  }

  stop(): void {}
}
