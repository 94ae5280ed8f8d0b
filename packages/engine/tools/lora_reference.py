#!/usr/bin/env python3
"""Reference outputs for the engine's LoRA tests, from peft and transformers.

For a Gemma-family base (Gemma 3 text: QK-norm, sliding windows) and a Llama-family
base (GQA, untied head), both reference.py's random-weight models, this writes four
LoRA adapters with peft (get_peft_model + save_pretrained) that differ in rank,
alpha, rsLoRA and target modules. peft starts B at zero, which would make every
adapter a no-op; A and B are both set to random values here, so an engine that
ignored an adapter (or applied the wrong one) fails. Each adapter is then merged
into a copy of the base (merge_and_unload) and that merged model is the reference:

  <out>/<case>/base/                    the base model directory
  <out>/<case>/adapters/<name>/         peft's adapter_config.json + adapter_model.safetensors
  <out>/<case>/logits-<model>.f32       merged-model logits of the case's prompt, [len, vocab] f32
  <out>/manifest.json                   cases, adapters, prompts, greedy outputs (written last)

Greedy references are 32 new tokens (EOS disabled), kept only where the top-2 logit
margin stays above MIN_GREEDY_MARGIN at every step, as in reference.py.

Usage: lora_reference.py --out DIR
"""

import argparse
import copy
import os
import sys

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402  (the base models and helpers of the numerics tests)

BASES = {"gemma3": "gemma3-window", "llama": "llama-gqa"}
# name -> LoraConfig kwargs. Ranks differ (the engine pads to the largest), one uses
# rsLoRA's alpha / sqrt(r), one peft's "all-linear", and two adapt only some projections.
ADAPTERS = {
    "all-r8": dict(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                      "up_proj", "down_proj"]),
    "qv-rslora": dict(r=4, lora_alpha=8, use_rslora=True, target_modules=["q_proj", "v_proj"]),
    "all-linear-r16": dict(r=16, lora_alpha=16, target_modules="all-linear"),
    "mlp-o-r2": dict(r=2, lora_alpha=4, target_modules=["o_proj", "gate_proj", "up_proj", "down_proj"]),
}
LOGIT_PROMPT_LENGTH = 33
GREEDY_PROMPT_LENGTHS = [6, 19]
GREEDY_NEW_TOKENS = 32
MIN_GREEDY_MARGIN = 1e-3


def randomize_lora(model, seed):
    """A and B random and non-zero; B scaled so an adapter moves a projection by
    about a third of the base weight's effect (visible in the tokens, not dominant)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_A" in name:
                p.copy_(torch.randn(p.shape, generator=g) / (p.shape[1] ** 0.5))
            elif "lora_B" in name:
                p.copy_(0.35 * torch.randn(p.shape, generator=g) / (p.shape[1] ** 0.5))


def greedy(model, prompt):
    ids = torch.tensor([prompt])
    model.generation_config.eos_token_id = None
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=GREEDY_NEW_TOKENS,
                         do_sample=False, pad_token_id=0, output_scores=True, return_dict_in_generate=True)
    tokens = out.sequences[0, len(prompt):].tolist()
    margin = min(float(s[0].topk(2).values[0] - s[0].topk(2).values[1]) for s in out.scores)
    return tokens, margin


def make_case(case, base_name, out_dir):
    case_dir = os.path.join(out_dir, case)
    base = reference.new_model(base_name)
    base_dir = os.path.join(case_dir, "base")
    base.save_pretrained(base_dir)
    base = reference.load_reference(base_dir)
    models = {"": base}
    adapters = []
    for i, (name, kwargs) in enumerate(ADAPTERS.items()):
        lora = get_peft_model(copy.deepcopy(base), LoraConfig(lora_dropout=0.0, bias="none", **kwargs))
        randomize_lora(lora, reference.SEEDS[base_name] * 10 + i)
        adapter_dir = os.path.join(case_dir, "adapters", name)
        lora.save_pretrained(adapter_dir)
        merged = lora.merge_and_unload()
        merged.eval()
        models[name] = merged
        adapters.append({"name": name, "dir": os.path.relpath(adapter_dir, out_dir), "r": kwargs["r"]})
    g = torch.Generator().manual_seed(reference.SEEDS[base_name] + 99)
    out = {"base_dir": os.path.relpath(base_dir, out_dir), "model_type": base.config.model_type,
           "vocab_size": reference.VOCAB, "adapters": adapters}
    record_runs(models, g, out_dir, case, out)
    return out


def record_runs(models, g, out_dir, prefix, out):
    """Into out["logits"] and out["greedy"]: each model's logits on one random prompt
    (files under out_dir/prefix), and for each of GREEDY_PROMPT_LENGTHS one prompt whose
    greedy run has no near-tie under any model, with every model's tokens on it."""
    out["logits"], out["greedy"] = [], []
    prompt = torch.randint(3, reference.VOCAB, (LOGIT_PROMPT_LENGTH,), generator=g).tolist()
    with torch.no_grad():
        for name, model in models.items():
            rel = os.path.join(prefix, "logits-%s.f32" % (name or "base"))
            reference.write_f32(os.path.join(out_dir, rel), model(input_ids=torch.tensor([prompt])).logits[0])
            out["logits"].append({"adapter": name, "ids": prompt, "logits": rel})
        for n in GREEDY_PROMPT_LENGTHS:
            for _ in range(40):
                p = torch.randint(3, reference.VOCAB, (n,), generator=g).tolist()
                runs = {name: greedy(model, p) for name, model in models.items()}
                if min(m for _, m in runs.values()) >= MIN_GREEDY_MARGIN:
                    break
            else:
                raise SystemExit("%s: no greedy prompt of length %d without near-ties" % (prefix or out_dir, n))
            for name, (tokens, _) in runs.items():
                out["greedy"].append({"adapter": name, "prompt": p, "tokens": tokens})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (created)")
    args = ap.parse_args()
    reference.start_cpu_run(args.out)
    manifest = {"version": 1, "peft": peft.__version__, "transformers": transformers.__version__, "cases": {}}
    for case, base_name in BASES.items():
        manifest["cases"][case] = make_case(case, base_name, args.out)
        print("built", case, file=sys.stderr)
    reference.write_manifest(args.out, manifest)


if __name__ == "__main__":
    main()
