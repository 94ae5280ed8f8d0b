// The batchgen web console: batches (status, progress, tokens/s over time, ETA, counts),
// one batch's page (timeline, first errors, downloads, cancel) and the fleet, refreshed
// every second from the public API with the user's API key. Routes: #/, #/batch/<id>, #/fleet.
import { apiKey, fileHead, getBatch, listBatches, listFleet, setApiKey } from "./api.js";
import { batchListView, batchPageView, fleetView, recordSample } from "./views.js";

const POLL_MS = 1_000;
const app = document.getElementById("app")!;
const notice = document.getElementById("notice")!;
const keyInput = document.getElementById("api-key") as HTMLInputElement;
const errorHeads = new Map<string, string[]>();
let timer: number | undefined;
let rendering = false;

keyInput.value = apiKey();
document.getElementById("key-form")!.addEventListener("submit", (e) => {
  e.preventDefault();
  setApiKey(keyInput.value.trim());
  void refresh();
});
window.addEventListener("hashchange", () => void refresh());

async function render(): Promise<HTMLElement[]> {
  const route = location.hash.replace(/^#/, "") || "/";
  const batch = /^\/batch\/([\w-]+)$/.exec(route);
  if (batch) {
    const b = await getBatch(batch[1]!);
    recordSample(b);
    // The error file's first lines, read once it exists.
    if (b.error_file_id && !errorHeads.has(b.id)) errorHeads.set(b.id, await fileHead(b.error_file_id, 5));
    return [batchPageView(b, errorHeads.get(b.id) ?? [], () => void refresh())];
  }
  if (route === "/fleet") return [fleetView(await listFleet())];
  const [batches, fleet] = await Promise.all([listBatches(), listFleet()]);
  for (const b of batches) recordSample(b);
  return [batchListView(batches), fleetView(fleet)];
}

async function refresh(): Promise<void> {
  if (timer !== undefined) clearTimeout(timer);
  if (!rendering) {
    rendering = true;
    try {
      if (!apiKey()) {
        notice.textContent = "Enter an API key above to see your batches.";
      } else {
        const views = await render();
        app.replaceChildren(...views);
        notice.textContent = "";
      }
    } catch (err) {
      notice.textContent = (err as Error).message;
    } finally {
      rendering = false;
    }
  }
  timer = window.setTimeout(() => void refresh(), POLL_MS);
}

void refresh();
