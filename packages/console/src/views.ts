// The console's three views, each rendered whole from API data on every poll: the batch
// list, one batch's page, and the fleet.
import { cancelBatch, download, type Batch, type FleetWorker } from "./api.js";
import { duration, h, rate, svg, time } from "./dom.js";

/** Tokens/s samples per batch, taken at each poll while it runs ([unix ms, tok/s]). */
const history = new Map<string, Array<[number, number]>>();

export function recordSample(b: Batch): void {
  if (b.status !== "in_progress" || !b.progress) return;
  const samples = history.get(b.id) ?? [];
  samples.push([Date.now(), b.progress.tokens_per_second]);
  if (samples.length > 600) samples.shift();
  history.set(b.id, samples);
}

const done = (b: Batch) => b.request_counts.completed + b.request_counts.failed;
const RUNNING = ["validating", "in_progress", "finalizing", "cancelling"];

function statusBadge(b: Batch): HTMLElement {
  return h("span", { class: `status ${b.status}`, "data-testid": "status" }, b.status);
}

function progressBar(b: Batch): HTMLElement {
  const total = b.request_counts.total;
  const pct = total > 0 ? (100 * done(b)) / total : b.status === "completed" ? 100 : 0;
  return h(
    "span",
    {},
    h("span", { class: "bar", role: "progressbar", "aria-valuenow": pct.toFixed(0) }, h("span", { style: `width:${pct.toFixed(1)}%` })),
    " ",
    h("span", { "data-testid": "progress-text" }, `${done(b)}/${total}`),
  );
}

/** Tokens/s over the batch's run as an SVG line (what this page saw while open). */
function chart(id: string, width: number, height: number): SVGElement {
  const s = history.get(id) ?? [];
  const root = svg("svg", { class: "chart", width: String(width), height: String(height), viewBox: `0 0 ${width} ${height}`, "data-testid": "tps-chart", "data-samples": String(s.length) });
  if (s.length < 2) return root;
  const t0 = s[0]![0];
  const span = Math.max(1, s.at(-1)![0] - t0);
  const max = Math.max(1, ...s.map(([, v]) => v));
  const points = s.map(([t, v]) => `${(((t - t0) / span) * (width - 4) + 2).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`);
  root.append(svg("polyline", { points: points.join(" "), fill: "none", stroke: "#2f7de1", "stroke-width": "1.5" }));
  return root;
}

export function batchListView(batches: Batch[]): HTMLElement {
  const rows = batches.map((b) =>
    h(
      "tr",
      { "data-testid": "batch-row", "data-batch-id": b.id },
      h("td", {}, h("a", { href: `#/batch/${b.id}` }, b.id)),
      h("td", {}, statusBadge(b)),
      h("td", {}, b.model ?? "—"),
      h("td", {}, progressBar(b)),
      h("td", { class: "num" }, rate(b.progress?.tokens_per_second)),
      h("td", {}, chart(b.id, 120, 24)),
      h("td", { class: "num" }, RUNNING.includes(b.status) ? duration(b.progress?.eta_seconds) : "—"),
      h("td", { class: "num" }, `${b.request_counts.completed} ok / ${b.request_counts.failed} failed`),
      h("td", {}, time(b.created_at)),
    ),
  );
  return h(
    "section",
    {},
    h("h2", {}, "Batches"),
    batches.length === 0
      ? h("p", { class: "muted" }, "No batches yet.")
      : h(
          "table",
          {},
          h("thead", {}, h("tr", {}, ...["Batch", "Status", "Model", "Progress", "Tokens/s", "", "ETA", "Requests", "Created"].map((c) => h("th", {}, c)))),
          h("tbody", {}, ...rows),
        ),
  );
}

export function batchPageView(b: Batch, firstErrors: string[], onChange: () => void): HTMLElement {
  const p = b.progress;
  const stages: Array<[string, number | null]> = [
    ["created", b.created_at],
    ["in_progress", b.in_progress_at],
    ["finalizing", b.finalizing_at],
    ["cancelling", b.cancelling_at],
    ["completed", b.completed_at],
    ["failed", b.failed_at],
    ["expired", b.expired_at],
    ["cancelled", b.cancelled_at],
  ];
  const timeline = stages.filter(([, at]) => at).sort((x, y) => x[1]! - y[1]!);
  const errors = [
    ...(b.errors?.data ?? []).slice(0, 5).map((e) => `line ${e.line ?? "—"}: ${e.code}: ${e.message}`),
    ...firstErrors.map((l) => {
      try {
        const e = JSON.parse(l) as { custom_id: string | null; error: { code: string; message: string; line?: number } };
        return `${e.custom_id ?? `line ${e.error.line}`}: ${e.error.code}: ${e.error.message}`;
      } catch {
        return l;
      }
    }),
  ];
  const action = (label: string, testid: string, run: () => Promise<unknown>) =>
    h("button", { type: "button", "data-testid": testid, onclick: () => void run().then(onChange, (err: Error) => alert(err.message)) }, label);
  return h(
    "section",
    { "data-testid": "batch-page", "data-batch-id": b.id },
    h("h2", {}, `Batch ${b.id} `, statusBadge(b)),
    h(
      "div",
      { class: "card grid" },
      h("div", {}, "Requests", h("b", {}, progressBar(b))),
      h("div", {}, "Succeeded / failed", h("b", { "data-testid": "counts" }, `${b.request_counts.completed} / ${b.request_counts.failed}`)),
      h("div", {}, "Tokens/s", h("b", { "data-testid": "tokens-per-second" }, rate(p?.tokens_per_second))),
      h("div", {}, "ETA", h("b", {}, RUNNING.includes(b.status) ? duration(p?.eta_seconds) : "—")),
      h("div", {}, "Prompt / completion tokens", h("b", {}, `${p?.prompt_tokens ?? 0} / ${p?.completion_tokens ?? 0}`)),
      h("div", {}, "Model", h("b", {}, b.model ?? "—")),
    ),
    h("h2", {}, "Tokens/s over time"),
    chart(b.id, 600, 120),
    h("h2", {}, "Timeline"),
    h("ol", { class: "timeline", "data-testid": "timeline" }, ...timeline.map(([stage, at]) => h("li", {}, h("b", {}, stage), " ", time(at)))),
    h("h2", {}, "Files"),
    h(
      "p",
      {},
      b.output_file_id ? action("Download output.jsonl", "download-output", () => download(b.output_file_id!, `${b.id}-output.jsonl`)) : h("span", { class: "muted" }, "no output file yet "),
      " ",
      b.error_file_id ? action("Download errors.jsonl", "download-errors", () => download(b.error_file_id!, `${b.id}-errors.jsonl`)) : null,
      " ",
      ["validating", "in_progress"].includes(b.status) ? action("Cancel batch", "cancel-button", () => cancelBatch(b.id)) : null,
    ),
    errors.length > 0 ? h("h2", {}, "First errors") : null,
    errors.length > 0 ? h("pre", { "data-testid": "first-errors" }, errors.join("\n")) : null,
  );
}

export function fleetView(workers: FleetWorker[]): HTMLElement {
  const now = Date.now() / 1000;
  // A worker serving LoRA adapters: how many, and how many its engine holds now.
  const adapterNote = (w: FleetWorker) =>
    w.adapters?.length ? h("span", { class: "muted", "data-testid": "fleet-adapters" }, ` + ${w.adapters.length} adapters, ${w.adapters_loaded?.length ?? 0} in memory`) : null;
  const adapterTitle = (w: FleetWorker) =>
    w.adapters?.length ? `adapters: ${w.adapters.join(", ")}; in memory: ${(w.adapters_loaded ?? []).join(", ") || "none"}` : w.model;
  return h(
    "section",
    {},
    h("h2", {}, "Fleet"),
    workers.length === 0
      ? h("p", { class: "muted" }, "No worker is connected.")
      : h(
          "table",
          {},
          h("thead", {}, h("tr", {}, ...["Worker", "Model", "Device", "Tokens/s", "Running / waiting", "KV cache", "Leases", "Last heartbeat"].map((c) => h("th", {}, c)))),
          h(
            "tbody",
            {},
            ...workers.map((w) =>
              h(
                "tr",
                { "data-testid": "fleet-row", "data-worker-id": w.id },
                h("td", {}, w.id),
                h("td", { title: adapterTitle(w) }, w.model, adapterNote(w)),
                h("td", { title: w.engine }, w.device || w.engine),
                h("td", { class: "num" }, rate(w.tokens_per_second)),
                h("td", { class: "num" }, `${w.requests_running} / ${w.requests_waiting}`),
                h("td", { class: "num" }, w.kv_blocks_total > 0 ? `${((100 * w.kv_blocks_used) / w.kv_blocks_total).toFixed(0)}%` : "—"),
                h("td", { class: "num" }, w.leases),
                h("td", { "data-testid": "last-heartbeat" }, `${Math.max(0, now - w.last_heartbeat_at).toFixed(0)} s ago`),
              ),
            ),
          ),
        ),
  );
}
