#!/usr/bin/env python3
"""Reference outputs from Hugging Face transformers for the CUDA engine's full-model
checks (tests/cpp/cuda_model_check.cpp), run on the GPU box.

Models, all stored in bf16 so the engine and transformers hold the same weights:
  * the Llama-family and Gemma test models of tools/reference.py (its CASES and its
    randomize()), built here and saved in bf16;
  * full-size random-weight Gemma shapes written by bench_engine (--full NAME=DIR:
    the directory must already hold config.json + model.safetensors).

For each model the reference is transformers in float32 on the same bf16 weights
(upcast), eager attention, TF32 off. Written under --out:
  <case>/model/          (test models only) the model directory
  <case>/logits-<i>.f32  logits of prompt i at every position, [len, vocab] float32
  manifest.json          cases, prompts, greedy references (written last)

Greedy references: transformers' greedy generate() of 16 tokens, EOS disabled, for
--candidates random prompts at once; the two prompts whose smallest top-1/top-2
logit gap over the 16 steps is largest (measured in standard deviations of the
logit row) are kept, so token equality tests the engine and not bf16 rounding of
a near-tie. Each case also records how far transformers' own bf16 run is from its
float32 one (hf_bf16_rel_l2): the scale a bf16 engine's error is judged against.

Usage: gpu_reference.py --out DIR [--device cuda] [--tiny] [--full gemma-2b=DIR ...]
"""

import argparse
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402  (tools/reference.py: the CPU reference's model recipes)

GREEDY_TOKENS = 16
LOGIT_PROMPT_LEN = 64


def write_f32(path, t):
    t.detach().to(torch.float32).contiguous().cpu().numpy().tofile(path)


def rel_l2_rows(a, b):
    """max over rows of ||a - b|| / ||b||."""
    d = (a.float() - b.float()).norm(dim=-1) / b.float().norm(dim=-1)
    return float(d.max())


def build_tiny(name, out_dir):
    """A tools/reference.py base case, saved in bf16."""
    model = reference.new_model(name)
    model_dir = os.path.join(out_dir, name, "model")
    model.to(torch.bfloat16).save_pretrained(model_dir)
    return model_dir


def make_case(name, model_dir, out_dir, device, candidates, gen):
    os.makedirs(os.path.join(out_dir, name), exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager",
        **({"device_map": device} if device == "cuda" else {}))
    model.to(device).eval()
    vocab = model.config.get_text_config().vocab_size  # a multimodal config keeps it in text_config
    lo, hi = (1000, 200000) if vocab > 200000 else (3, vocab)
    case = {"model_dir": os.path.abspath(model_dir), "vocab_size": vocab,
            "model_type": model.config.model_type, "prompts": [], "greedy": []}
    with torch.no_grad():
        prompt = torch.randint(lo, hi, (LOGIT_PROMPT_LEN,), generator=gen)
        logits32 = model(prompt[None].to(device)).logits[0]
        rel = os.path.join(name, "logits-0.f32")
        write_f32(os.path.join(out_dir, rel), logits32)
        case["prompts"].append({"ids": prompt.tolist(), "logits": rel, "rows": LOGIT_PROMPT_LEN})

        cand = torch.randint(lo, hi, (candidates, 16), generator=gen).to(device)
        model.generation_config.eos_token_id = None
        out = model.generate(cand, attention_mask=torch.ones_like(cand), max_new_tokens=GREEDY_TOKENS,
                             do_sample=False, pad_token_id=0, output_scores=True, return_dict_in_generate=True)
        margins = []
        for s in out.scores:  # [candidates, vocab] per step
            top = s.float().topk(2, dim=-1).values
            margins.append((top[:, 0] - top[:, 1]) / s.float().std(dim=-1))
        min_margin = torch.stack(margins, dim=1).min(dim=1).values
        for i in min_margin.argsort(descending=True)[:2].tolist():
            case["greedy"].append({"prompt": cand[i].tolist(),
                                   "tokens": out.sequences[i, cand.shape[1]:].tolist(),
                                   "min_margin_std": float(min_margin[i])})

        # transformers' own bf16 error on the same prompt: the yardstick.
        model.to(torch.bfloat16)
        logits16 = model(prompt[None].to(device)).logits[0]
        case["hf_bf16_rel_l2"] = rel_l2_rows(logits16, logits32)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    print("reference %s: hf bf16 vs f32 rel_l2 %.2e, greedy min margins %s" % (
        name, case["hf_bf16_rel_l2"], [round(g["min_margin_std"], 3) for g in case["greedy"]]), file=sys.stderr)
    return case


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="the tools/reference.py base models")
    ap.add_argument("--full", action="append", default=[], help="NAME=DIR of a bench_engine model")
    ap.add_argument("--candidates", type=int, default=128)
    ap.add_argument("--seed", type=int, default=4)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    os.makedirs(args.out, exist_ok=True)
    gen = torch.Generator().manual_seed(args.seed)
    manifest = {"version": 1, "transformers": transformers.__version__, "torch": torch.__version__,
                "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu", "cases": {}}
    if args.tiny:
        for name, spec in reference.CASES.items():
            if isinstance(spec[0], str):
                continue  # loader variants: the engine's CPU tests cover them
            model_dir = build_tiny(name, args.out)
            manifest["cases"][name] = make_case(name, model_dir, args.out, args.device, args.candidates, gen)
    for item in args.full:
        name, _, model_dir = item.partition("=")
        manifest["cases"][name] = make_case(name, model_dir, args.out, args.device, args.candidates, gen)
    tmp = os.path.join(args.out, "manifest.json.tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f)
    os.replace(tmp, os.path.join(args.out, "manifest.json"))


if __name__ == "__main__":
    main()
