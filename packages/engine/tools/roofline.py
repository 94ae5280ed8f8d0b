#!/usr/bin/env python3
"""The roofline of a generation workload on one GPU (issue 11): the output tokens/s an
engine could reach if every step ran at the measured ceilings, from the model's shape.

    python3 tools/roofline.py --config MODEL_DIR/config.json --n 1024 --inp 512 --out 256 \
        --max-seqs 1024 --max-batch-tokens 8192 --copy-gbs 4237 --tflops 778

The ceilings are the ones scripts/gpu-check.sh measures in the same run (kernel_bench:
device-to-device copy bandwidth, cuBLAS bf16 GEMM peak). Prints one JSON line.

What is counted (bf16 weights and KV, f32 logits):
- FLOPs: 2 x the matmul parameters (q, k, v, o, gate, up, down in every layer, and the
  LM head) per token; the LM head only on the rows that sample (a prompt's last token and
  every decode token); attention 4 x head_dim x q heads per (query, key) pair, causal
  within a prompt (P (P + 1) / 2 pairs per layer and head), the whole context in decode.
- Bytes: every step reads all matmul weights once; a decode step reads the K and V of
  every running sequence's context and writes one token's; each sampled row's logits are
  written and read once in f32. Activations between kernels are left out (the fused
  engine keeps most of them on chip; counting them would lower the roofline).
- Schedule: the workload runs in waves of max_seqs sequences: the wave's prompts in
  steps of max_batch_tokens tokens, then its decode steps, each step at
  max(FLOPs / peak, bytes / bandwidth). Sliding windows are not modelled (they only
  shrink the KV bytes, so the figure stays a bound for Gemma 2/3).
Also printed: bound_out_tok_s, the schedule-free bound max(all FLOPs / peak, all bytes /
bandwidth), which an engine that overlapped memory-bound decode with compute-bound
prefill perfectly could approach.
"""
import argparse
import json
import math
import sys


def shape_of(cfg):
    """The numbers the roofline needs from a Hugging Face config.json."""
    c = cfg.get("text_config", cfg)
    hidden = c["hidden_size"]
    heads = c["num_attention_heads"]
    kv_heads = c.get("num_key_value_heads", heads)
    head_dim = c.get("head_dim") or hidden // heads
    return {
        "layers": c["num_hidden_layers"],
        "hidden": hidden,
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "inter": c["intermediate_size"],
        "vocab": c["vocab_size"],
    }


def layer_params(s):
    q = s["hidden"] * s["heads"] * s["head_dim"]
    kv = 2 * s["hidden"] * s["kv_heads"] * s["head_dim"]
    o = s["heads"] * s["head_dim"] * s["hidden"]
    mlp = 3 * s["hidden"] * s["inter"]
    return q + kv + o + mlp


def roofline(s, n, inp, out, max_seqs, max_batch_tokens, copy_gbs, tflops, weight_bytes=2, kv_bytes=2):
    bw = copy_gbs * 1e9
    peak = tflops * 1e12
    body = layer_params(s) * s["layers"]          # matmul parameters without the LM head
    head = s["hidden"] * s["vocab"]
    weights = (body + head) * weight_bytes          # read once a step
    kv_token = 2 * s["layers"] * s["kv_heads"] * s["head_dim"] * kv_bytes  # K and V of one token
    attn = 4 * s["head_dim"] * s["heads"] * s["layers"]  # FLOPs per (query, key) pair, all layers
    logits_row = s["vocab"] * 4 * 2                 # f32, written and read

    t_prefill = t_decode = 0.0
    flops_all = bytes_all = 0.0
    left = n
    while left > 0:
        b = min(left, max_seqs)
        left -= b
        # Prefill: the wave's prompts in steps of max_batch_tokens tokens.
        tokens = b * inp
        steps = math.ceil(tokens / max_batch_tokens)
        f = 2 * body * tokens + 2 * head * b + attn * b * inp * (inp + 1) / 2
        rest = kv_token * tokens + logits_row * b  # K/V written, the last rows' logits
        by = weights * steps + rest
        # Each of the equal steps: its share of the FLOPs, the weights and its share of the rest.
        t_prefill += steps * max(f / steps / peak, (weights + rest / steps) / bw)
        flops_all += f
        bytes_all += by
        # Decode: the first output token comes from the prefill's last row; each later one
        # is a step over every sequence of the wave at context inp + i.
        for i in range(1, out):
            ctx = inp + i
            f = 2 * (body + head) * b + attn * b * ctx
            by = weights + kv_token * b * ctx + kv_token * b + logits_row * b
            t_decode += max(f / peak, by / bw)
            flops_all += f
            bytes_all += by
    total_out = n * out
    t = t_prefill + t_decode
    bound = max(flops_all / peak, bytes_all / bw)
    return {
        "roofline_out_tok_s": round(total_out / t, 1),
        "bound_out_tok_s": round(total_out / bound, 1),
        "prefill_s": round(t_prefill, 4),
        "decode_s": round(t_decode, 4),
        "tflop": round(flops_all / 1e12, 2),
        "gb": round(bytes_all / 1e9, 2),
        "matmul_params": body + head,
        "kv_bytes_per_token": kv_token,
        "copy_gbs": copy_gbs,
        "tflops": tflops,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="the model's config.json")
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--inp", type=int, default=512)
    p.add_argument("--out", type=int, default=256)
    p.add_argument("--max-seqs", type=int, default=0, help="running sequences at once (0: all n)")
    p.add_argument("--max-batch-tokens", type=int, default=8192)
    p.add_argument("--copy-gbs", type=float, required=True, help="measured device copy bandwidth, GB/s")
    p.add_argument("--tflops", type=float, required=True, help="measured cuBLAS bf16 peak, TFLOP/s")
    a = p.parse_args(argv)
    if min(a.n, a.inp, a.out, a.max_batch_tokens) < 1 or a.max_seqs < 0 or a.copy_gbs <= 0 or a.tflops <= 0:
        p.error("n, inp, out and max-batch-tokens must be >= 1, max-seqs >= 0, the ceilings > 0")
    try:
        with open(a.config) as f:
            s = shape_of(json.load(f))
    except (OSError, ValueError, KeyError) as e:
        p.error(f"{a.config}: not a usable config.json ({e})")
    r = roofline(s, a.n, a.inp, a.out, a.max_seqs or a.n, a.max_batch_tokens, a.copy_gbs, a.tflops)
    print(json.dumps({"n": a.n, "inp": a.inp, "out": a.out, **r}))


if __name__ == "__main__":
    sys.exit(main())
