// LoRA adapters for the end-to-end model, in peft's format (adapter_config.json and
// adapter_model.safetensors, peft's tensor names), with random non-zero A and B so an
// adapter changes the answers. Small (rank 4 on three projections): made per test run.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

const TARGETS: Record<string, (c: ModelShape) => [inDim: number, outDim: number]> = {
  "self_attn.q_proj": (c) => [c.hidden, c.heads * c.headDim],
  "self_attn.v_proj": (c) => [c.hidden, c.kvHeads * c.headDim],
  "mlp.down_proj": (c) => [c.intermediate, c.hidden],
};

interface ModelShape {
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  layers: number;
}

/** Writes a peft LoRA adapter (rank `r`, q/v/down projections) for the model in modelDir into dir. */
export async function writeE2eLora(modelDir: string, dir: string, seed: number, r = 4): Promise<string> {
  const cfg = JSON.parse(await readFile(join(modelDir, "config.json"), "utf8")) as Record<string, number>;
  const shape: ModelShape = {
    hidden: cfg.hidden_size!,
    heads: cfg.num_attention_heads!,
    kvHeads: cfg.num_key_value_heads ?? cfg.num_attention_heads!,
    headDim: cfg.head_dim ?? cfg.hidden_size! / cfg.num_attention_heads!,
    intermediate: cfg.intermediate_size!,
    layers: cfg.num_hidden_layers!,
  };
  await mkdir(dir, { recursive: true });
  {
    let state = seed >>> 0;
    const rand = () => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return state / 2 ** 32 - 0.5;
    };
    const tensors: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
    for (let l = 0; l < shape.layers; l++) {
      for (const [module, dims] of Object.entries(TARGETS)) {
        const [inDim, outDim] = dims(shape);
        const prefix = `base_model.model.model.layers.${l}.${module}`;
        const a = Float32Array.from({ length: r * inDim }, () => (2 * rand()) / Math.sqrt(inDim));
        const b = Float32Array.from({ length: outDim * r }, () => rand() / Math.sqrt(r));
        tensors.push({ name: `${prefix}.lora_A.weight`, shape: [r, inDim], data: a }, { name: `${prefix}.lora_B.weight`, shape: [outDim, r], data: b });
      }
    }
    const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
    let offset = 0;
    for (const t of tensors) {
      header[t.name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
      offset += t.data.byteLength;
    }
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    await writeFile(join(dir, "adapter_model.safetensors"), Buffer.concat([len, json, ...tensors.map((t) => Buffer.from(t.data.buffer))]));
    await writeFile(
      join(dir, "adapter_config.json"),
      JSON.stringify({ peft_type: "LORA", r, lora_alpha: 2 * r, target_modules: ["q_proj", "v_proj", "down_proj"], bias: "none", modules_to_save: null }),
    );
  }
  return dir;
}
