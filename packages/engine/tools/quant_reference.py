#!/usr/bin/env python3
"""Reference quantizers and quantized checkpoints for the engine's quantization tests.

No AWQ, GPTQ or bitsandbytes library runs here, so the quantizers below write each
format as its documentation and its loaders lay it out (packages/engine/src/quant/
quant_hf.h has the layouts), and dequantize it back with the format's own formula.
One small random-weight Llama (2 layers, hidden 128, GQA, untied head) is written
once per case with its seven linear weights per layer quantized:

  fp8-tensor     transformers "fp8", weight_block_size null: weight_scale_inv []
  fp8-block      transformers "fp8", weight_block_size [32, 64]: scale grid
  fp8-channel    "fbgemm_fp8": weight_scale [N, 1]
  awq            AutoAWQ gemm, group 64, zero points, AWQ's nibble order
  gptq           GPTQ group 32, asymmetric, zero points stored minus one ("gptq")
  gptq-act-order GPTQ group 32 with desc_act: a column order per input (q/k/v share
                 one, gate/up another, as GPTQ's shared Hessian gives them), g_idx
  gptq-v2        "gptq_v2" zero points as they are, symmetric, one group a row (-1)
  nf4            bitsandbytes NF4, blocksize 64, absmax in f32
  nf4-double     bitsandbytes NF4 with double quantization (QLoRA's default): absmax
                 as 8-bit codes with nested absmax, offset and a 256-value map
  quantize-fp8   the bf16 checkpoint the engine quantizes itself (--quantize fp8);
                 the reference quantizes it per channel with the same operations

For every case the reference is transformers' LlamaForCausalLM in float32 (eager
attention) holding the dequantized weights, and PyTorch matmuls of those weights:

  <out>/<case>/model/            the checkpoint the engine loads
  <out>/<case>/check.safetensors for each quantized linear of layer 0 ("P"):
                                 w.P the dequantized weight, x.P inputs [5, K],
                                 y.P = x @ w^T computed in float64, stored as f32
  <out>/<case>/logits-<i>.f32    logits of prompt i at every position, [len, vocab]
  <out>/manifest.json            written last

Usage: quant_reference.py --out DIR
"""

import argparse
import json
import os

import numpy as np
import safetensors.torch
import torch
from transformers import LlamaConfig, LlamaForCausalLM

HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, VOCAB = 128, 256, 2, 4, 2, 256
PROMPT_LENGTHS = [1, 7, 33]
LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
# bitsandbytes' NF4 values (functional.get_4bit_type("nf4")).
NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
       -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
       0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
       0.7229568362236023, 1.0]
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]  # nibble i of a word holds column AWQ_ORDER[i] of its eight
FP8_MAX = 448.0


def config():
    return LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=LAYERS,
                       num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HIDDEN // HEADS,
                       max_position_embeddings=256, tie_word_embeddings=False, bos_token_id=2, eos_token_id=1,
                       pad_token_id=0, rms_norm_eps=1e-5, rope_theta=10000.0)


def base_weights(gen):
    """f32 weights; linears std 1.5 / sqrt(fan_in) so every layer moves the residual stream."""
    w = {"model.embed_tokens.weight": torch.randn(VOCAB, HIDDEN, generator=gen),
         "model.norm.weight": 1 + 0.1 * torch.randn(HIDDEN, generator=gen),
         "lm_head.weight": torch.randn(VOCAB, HIDDEN, generator=gen) / HIDDEN ** 0.5}
    shapes = {"self_attn.q_proj": (HIDDEN, HIDDEN), "self_attn.k_proj": (HIDDEN // 2, HIDDEN),
              "self_attn.v_proj": (HIDDEN // 2, HIDDEN), "self_attn.o_proj": (HIDDEN, HIDDEN),
              "mlp.gate_proj": (INTER, HIDDEN), "mlp.up_proj": (INTER, HIDDEN), "mlp.down_proj": (HIDDEN, INTER)}
    for layer in range(LAYERS):
        p = f"model.layers.{layer}."
        w[p + "input_layernorm.weight"] = 1 + 0.1 * torch.randn(HIDDEN, generator=gen)
        w[p + "post_attention_layernorm.weight"] = 1 + 0.1 * torch.randn(HIDDEN, generator=gen)
        for name, (n, k) in shapes.items():
            w[p + name + ".weight"] = 1.5 * torch.randn(n, k, generator=gen) / k ** 0.5
    return w


# --- the formats: quantize(w [N, K] f32) -> (tensors under the module's prefix, dequantized f32 weight) ---

def fp8_cast(x, scale):
    return (x / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)


def fp8_tensor(w, _):
    scale = (w.abs().max() / FP8_MAX).to(torch.float32)
    q = fp8_cast(w, scale)
    return {"weight": q, "weight_scale_inv": scale.reshape(())}, q.float() * scale


def fp8_block(w, _, br=32, bc=64):
    n, k = w.shape
    blocks = w.reshape(n // br, br, k // bc, bc)
    scale = blocks.abs().amax(dim=(1, 3)) / FP8_MAX  # [n / br, k / bc]
    full = scale.repeat_interleave(br, 0).repeat_interleave(bc, 1)
    q = fp8_cast(w, full)
    return {"weight": q, "weight_scale_inv": scale.contiguous()}, q.float() * full


def fp8_channel(w, _):
    scale = w.abs().amax(dim=1, keepdim=True) / FP8_MAX
    q = fp8_cast(w, scale)
    return {"weight": q, "weight_scale": scale.contiguous()}, q.float() * scale


def minmax_quant(wt, group, order=None, sym=False):
    """Asymmetric (or symmetric) 4-bit over groups of input columns. wt is W^T [K, N];
    order lists input columns in quantization order (act-order), groups run along it.
    Returns q [K, N] ints, zeros [K/G, N] ints, scales [K/G, N] f16."""
    k, n = wt.shape
    order = torch.arange(k) if order is None else order
    q = torch.zeros(k, n, dtype=torch.int64)
    zeros = torch.zeros(k // group, n, dtype=torch.int64)
    scales = torch.zeros(k // group, n, dtype=torch.float16)
    for g in range(k // group):
        cols = order[g * group:(g + 1) * group]
        x = wt[cols]
        if sym:
            s = (x.abs().amax(0) / 7.5).clamp(min=1e-5).half()
            z = torch.full((n,), 8, dtype=torch.int64)
        else:
            lo, hi = x.amin(0).clamp(max=0), x.amax(0).clamp(min=0)
            s = ((hi - lo) / 15).clamp(min=1e-5).half()
            z = torch.round(-lo / s.float()).clamp(0, 15).long()
        q[cols] = (torch.round(x / s.float()) + z).clamp(0, 15).long()
        zeros[g], scales[g] = z, s
    return q, zeros, scales


def pack_rows8(v, order=range(8)):
    """[R, C] ints 0..15 -> [R, C / 8] int32, nibble i of a word holding column 8c + order[i]."""
    r, c = v.shape
    v = v.reshape(r, c // 8, 8).numpy().astype(np.uint32)
    out = np.zeros((r, c // 8), dtype=np.uint32)
    for i, col in enumerate(order):
        out |= v[:, :, col] << np.uint32(4 * i)
    return torch.from_numpy(out.view(np.int32))


def awq(w, _, group=64):
    q, zeros, scales = minmax_quant(w.T.contiguous(), group)
    deq = ((q - zeros.repeat_interleave(group, 0)).float() * scales.float().repeat_interleave(group, 0)).T
    return ({"qweight": pack_rows8(q, AWQ_ORDER), "qzeros": pack_rows8(zeros, AWQ_ORDER), "scales": scales},
            deq.contiguous())


def gptq_unpack_dequant(qweight, qzeros, scales, g_idx, minus_one):
    """GPTQ's documented dequantization, from the stored tensors."""
    qw = qweight.numpy().view(np.uint32)
    k8, n = qw.shape
    q = np.stack([(qw >> np.uint32(4 * i)) & 15 for i in range(8)], axis=1).reshape(k8 * 8, n)
    qz = qzeros.numpy().view(np.uint32)
    z = np.stack([(qz >> np.uint32(4 * i)) & 15 for i in range(8)], axis=2).reshape(qz.shape[0], -1).astype(np.int64)
    if minus_one:
        z = z + 1  # stored z - 1 (a stored 15 comes back as 16, as AutoGPTQ unpacks it)
    g = g_idx.long()
    return ((torch.from_numpy(q.astype(np.int64)) - torch.from_numpy(z)[g]).float() * scales.float()[g]).T.contiguous()


def gptq_case(group, act_order=False, sym=False, minus_one=True):
    def quantize(w, key):
        k = w.shape[1]
        g = k if group == -1 else group
        order = None
        if act_order:
            # GPTQ's order is argsort of the Hessian diagonal, which depends on the
            # layer's input only: projections that share an input share an order.
            order = torch.randperm(k, generator=torch.Generator().manual_seed(key))
        q, zeros, scales = minmax_quant(w.T.contiguous(), g, order, sym)
        g_idx = torch.empty(k, dtype=torch.int32)
        cols = torch.arange(k) if order is None else order
        g_idx[cols] = (torch.arange(k) // g).int()
        stored = (zeros - 1) & 15 if minus_one else zeros
        # qweight packs along the input dimension: word r of column n holds rows 8r..8r+7.
        qweight = pack_rows8(q.T.contiguous()).T.contiguous()
        t = {"qweight": qweight, "qzeros": pack_rows8(stored), "scales": scales, "g_idx": g_idx}
        return t, gptq_unpack_dequant(qweight, t["qzeros"], scales, g_idx, minus_one)
    return quantize


def nf4_case(double):
    table = torch.tensor(NF4)

    def quantize(w, _, block=64):
        n, k = w.shape
        flat = w.reshape(-1, block)
        absmax = flat.abs().amax(1)
        q = (flat / absmax[:, None]).unsqueeze(-1).sub(table).abs().argmin(-1).reshape(-1)
        packed = ((q[0::2] << 4) | q[1::2]).to(torch.uint8).reshape(-1, 1)
        state = {"quant_type": "nf4", "blocksize": block, "dtype": "bfloat16", "shape": [n, k]}
        t = {"weight": packed, "weight.quant_map": table.clone()}
        if double:
            nested_block = 256
            offset = absmax.mean()
            a = absmax - offset
            pad = (-len(a)) % nested_block
            nested_absmax = torch.nn.functional.pad(a, (0, pad)).reshape(-1, nested_block).abs().amax(1)
            # Any 256-value table exercises the same path (the file carries it);
            # this one is evenly spaced over [-1, 1].
            nested_map = torch.linspace(-1, 1, 256)
            norm = a / nested_absmax.repeat_interleave(nested_block)[:len(a)]
            codes = norm.unsqueeze(-1).sub(nested_map).abs().argmin(-1)
            absmax = nested_map[codes] * nested_absmax.repeat_interleave(nested_block)[:len(a)] + offset
            t.update({"weight.absmax": codes.to(torch.uint8), "weight.nested_absmax": nested_absmax,
                      "weight.nested_quant_map": nested_map})
            state.update({"nested_blocksize": nested_block, "nested_offset": offset.item(), "nested_dtype": "float32"})
        else:
            t["weight.absmax"] = absmax
        t["weight.quant_state.bitsandbytes__nf4"] = torch.tensor(list(json.dumps(state).encode()), dtype=torch.uint8)
        deq = (table[q].reshape(-1, block) * absmax[:, None]).reshape(n, k)
        return t, deq
    return quantize


def quantize_fp8_reference(w, _):
    """What --quantize fp8 does to a float weight: per-channel max / 448, e4m3."""
    amax = w.abs().amax(dim=1, keepdim=True)
    scale = torch.where(amax > 0, amax / FP8_MAX, torch.ones_like(amax))
    return None, fp8_cast(w, scale).float() * scale


# name -> (quantization_config or None, quantizer)
CASES = {
    "fp8-tensor": ({"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": None}, fp8_tensor),
    "fp8-block": ({"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [32, 64]}, fp8_block),
    "fp8-channel": ({"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0}, fp8_channel),
    "awq": ({"quant_method": "awq", "bits": 4, "group_size": 64, "zero_point": True, "version": "gemm"}, awq),
    "gptq": ({"quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": False, "sym": False,
              "checkpoint_format": "gptq"}, gptq_case(32)),
    "gptq-act-order": ({"quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": True, "sym": False},
                       gptq_case(32, act_order=True)),
    "gptq-v2": ({"quant_method": "gptq", "bits": 4, "group_size": -1, "desc_act": False, "sym": True,
                 "checkpoint_format": "gptq_v2"}, gptq_case(-1, sym=True, minus_one=False)),
    "nf4": ({"quant_method": "bitsandbytes", "load_in_4bit": True, "load_in_8bit": False,
             "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": False,
             "bnb_4bit_compute_dtype": "bfloat16"}, nf4_case(False)),
    "nf4-double": ({"quant_method": "bitsandbytes", "load_in_4bit": True, "load_in_8bit": False,
                    "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
                    "bnb_4bit_compute_dtype": "bfloat16"}, nf4_case(True)),
    "quantize-fp8": (None, quantize_fp8_reference),
}

# Linears that read the same input share an act-order key.
INPUT_KEY = {"self_attn.q_proj": 1, "self_attn.k_proj": 1, "self_attn.v_proj": 1, "self_attn.o_proj": 2,
             "mlp.gate_proj": 3, "mlp.up_proj": 3, "mlp.down_proj": 4}


def write_case(out, name, qc, quantize, base, prompts):
    case_dir = os.path.join(out, name)
    model_dir = os.path.join(case_dir, "model")
    os.makedirs(model_dir)
    cfg = config()
    cfg_dict = cfg.to_dict()
    if qc is not None:
        cfg_dict["quantization_config"] = qc
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(cfg_dict, f, indent=1)
    stored, deq, check = {}, {}, {}
    gen = torch.Generator().manual_seed(99)
    for key, w in base.items():
        module = key[:-len(".weight")]
        short = next((l for l in LINEARS if module.endswith(l)), None)
        if short is None:
            stored[key] = w if qc is not None else w.to(torch.bfloat16)
            deq[key] = stored[key].float()
            continue
        layer = int(module.split(".")[2])
        src = w if qc is not None else w.to(torch.bfloat16).float()
        tensors, dq = quantize(src, INPUT_KEY[short] * 10 + layer)
        if tensors is None:
            stored[key] = w.to(torch.bfloat16)
        else:
            for suffix, t in tensors.items():
                stored[module + "." + suffix] = t.contiguous()
        deq[key] = dq.float().contiguous()
        if layer == 0:
            x = torch.randn(5, w.shape[1], generator=gen)
            check["w." + module] = deq[key]
            check["x." + module] = x
            check["y." + module] = (x.double() @ deq[key].double().T).float()
    safetensors.torch.save_file(stored, os.path.join(model_dir, "model.safetensors"), metadata={"format": "pt"})
    safetensors.torch.save_file(check, os.path.join(case_dir, "check.safetensors"))

    model = LlamaForCausalLM(cfg).float().eval()
    model.config._attn_implementation = "eager"
    missing, unexpected = model.load_state_dict(deq, strict=False)
    assert not unexpected and all("rotary" in m for m in missing), (missing, unexpected)
    entries = []
    with torch.no_grad():
        for i, ids in enumerate(prompts):
            logits = model(torch.tensor([ids])).logits[0].float().numpy()
            path = os.path.join(name, f"logits-{i}.f32")
            logits.astype("<f4").tofile(os.path.join(out, path))
            entries.append({"ids": ids, "logits": path})
    return {"model_dir": os.path.join(name, "model"), "check": os.path.join(name, "check.safetensors"),
            "quantize": "fp8" if qc is None else "", "vocab_size": VOCAB, "prompts": entries,
            "linears": [f"model.layers.0.{l}" for l in LINEARS]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    base = base_weights(torch.Generator().manual_seed(1234))
    rng = np.random.default_rng(5)
    prompts = [[2] + rng.integers(3, VOCAB, n - 1).tolist() for n in PROMPT_LENGTHS]
    manifest = {"cases": {name: write_case(args.out, name, qc, q, base, prompts) for name, (qc, q) in CASES.items()}}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
