// What the engine alone answers for a batch request line: the model loaded in the test
// process with @batchgen/engine's Engine, the prompt made as Hugging Face transformers
// makes it (chat: the model's template with the generation prompt, no extra special
// tokens; completion: the tokenizer's special tokens added), the request's sampling
// parameters, the completion decoded without special tokens. End-to-end tests compare
// every output body against it.
import { Engine, Tokenizer, type GenerateRequest } from "@batchgen/engine";
import { E2E_MAX_MODEL_LEN } from "./e2e-model.js";
import type { RequestLine } from "./batch-requests.js";

export interface ExpectedCompletion {
  text: string;
  finishReason: "stop" | "length";
  promptTokens: number;
  completionTokens: number;
}

export class EngineReference {
  private constructor(
    private readonly engine: Engine,
    private readonly tokenizer: Tokenizer,
  ) {}

  static async load(modelDir: string): Promise<EngineReference> {
    const engine = await Engine.load({
      modelDir,
      device: "cpu",
      threads: 1,
      maxSeqs: 64,
      maxModelLen: E2E_MAX_MODEL_LEN,
      kvCacheBlocks: 2048,
      deterministic: true,
    });
    return new EngineReference(engine, await Tokenizer.fromDir(modelDir));
  }

  /** The expected completion of every line, by custom_id. */
  async expected(lines: readonly RequestLine[]): Promise<Map<string, ExpectedCompletion>> {
    const answers = await Promise.all(lines.map((l) => this.run(l)));
    return new Map(lines.map((l, i) => [l.custom_id, answers[i]!]));
  }

  close(): Promise<void> {
    return this.engine.close();
  }

  /** An embeddings input as a worker on a model without modules.json answers it: mean pooling, unit length. */
  async embedding(input: string | number[]): Promise<number[]> {
    const prompt = typeof input === "string" ? this.tokenizer.encode(input, { addSpecialTokens: true }) : input;
    const r = await this.engine.generate({ prompt, pooling: "mean" });
    if (!r.embedding) throw new Error(`reference engine: no embedding (${r.finishReason} ${r.error ?? ""})`);
    const norm = Math.sqrt(r.embedding.reduce((s, x) => s + x * x, 0));
    return Array.from(r.embedding, (x) => x / norm);
  }

  private async run(line: RequestLine): Promise<ExpectedCompletion> {
    const b = line.body as {
      messages?: Array<{ role: string; content: string }>;
      prompt?: string;
      max_tokens?: number;
      max_completion_tokens?: number;
      temperature?: number;
      top_k?: number;
      top_p?: number;
      seed?: number;
    };
    const prompt = b.messages
      ? this.tokenizer.encode(this.tokenizer.applyChatTemplate(b.messages, { addGenerationPrompt: true }), { addSpecialTokens: false })
      : this.tokenizer.encode(b.prompt ?? "", { addSpecialTokens: true });
    const request: GenerateRequest = {
      prompt,
      maxTokens: b.max_completion_tokens ?? b.max_tokens ?? 16,
      temperature: b.temperature ?? 1,
      topK: b.top_k ?? 0,
      topP: b.top_p ?? 1,
      minP: 0,
    };
    if (b.seed !== undefined) request.seed = b.seed;
    const r = await this.engine.generate(request);
    if (r.finishReason !== "stop" && r.finishReason !== "length") {
      throw new Error(`reference engine: ${line.custom_id} ended with ${r.finishReason} ${r.error ?? ""}`);
    }
    return {
      text: this.tokenizer.decode(r.tokens, { skipSpecialTokens: true }),
      finishReason: r.finishReason,
      promptTokens: r.promptTokens,
      completionTokens: r.completionTokens,
    };
  }
}
