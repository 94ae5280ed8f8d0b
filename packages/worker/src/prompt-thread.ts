// The body of one PromptPool thread: loads the model's tokenizer, then answers each
// { id, request } with its prompt token ids (transferred, not copied) or the line's error.
import { parentPort, workerData } from "node:worker_threads";
import { LineFailure } from "./line-failure.js";
import { promptTokens, type PromptRequest } from "./prompt-tokens.js";
import { loadWorkerTokenizer } from "./worker-tokenizer.js";

export interface PromptThreadData {
  modelDir: string;
  maxModelLen: number;
}

export type PromptThreadReply =
  | { id: number; ok: true; ids: Int32Array }
  | { id: number; ok: false; code: LineFailure["code"] | "engine_error"; message: string };

const { modelDir, maxModelLen } = workerData as PromptThreadData;
const port = parentPort!;
const tokenizer = await loadWorkerTokenizer(modelDir);
const limit = { maxModelLen, maxTokenChars: tokenizer.maxTokenChars ?? 1 };

port.on("message", ({ id, request }: { id: number; request: PromptRequest }) => {
  let reply: PromptThreadReply;
  try {
    reply = { id, ok: true, ids: Int32Array.from(promptTokens(request, tokenizer, limit)) };
  } catch (err) {
    const code = err instanceof LineFailure ? err.code : (err as { code?: unknown }).code === "invalid_argument" ? "invalid_request" : "engine_error";
    reply = { id, ok: false, code, message: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply, reply.ok ? [reply.ids.buffer as ArrayBuffer] : []);
});
port.postMessage({ ready: true });
