#!/usr/bin/env python3
"""Reference outputs for the engine's QLoRA test: peft adapters on an NF4 base.

The base is reference.py's Gemma 7B-like model (multi-head attention, head_dim 256,
GeGLU, tied head) with every decoder linear quantized to bitsandbytes NF4 with
double quantization (QLoRA's default) by quant_reference.py's quantizer, in the
layout bitsandbytes saves. Two adapters are written by peft on the dequantized base:

  qlora-r16   what the QLoRA recipe makes: r=16, lora_alpha=16, lora_dropout=0.05,
              q/k/v/o/gate/up/down, task_type CAUSAL_LM
  qv-r8       a second, different adapter (r=8, q/v only), for mixed batches and the
              prefix cache

A and B are random and non-zero (lora_reference.randomize_lora). The reference is
PyTorch on the dequantized base, float32 and eager attention, with the adapter
applied by peft unmerged (base output plus the scaled low-rank update, as QLoRA
runs it), and the dequantized base alone for the base lines:

  <out>/base/                  the NF4 checkpoint the engine loads
  <out>/adapters/<name>/       peft's adapter_config.json + adapter_model.safetensors
  <out>/logits-<model>.f32     logits of the prompt at every position, [len, vocab]
  <out>/manifest.json          adapters, prompts, greedy outputs (written last)

Greedy references are 32 new tokens (EOS disabled) from prompts whose top-2 logit
margin stays above lora_reference.MIN_GREEDY_MARGIN at every step under every model.

Usage: qlora_reference.py --out DIR
"""

import argparse
import copy
import json
import os
import sys

import peft
import safetensors.torch
import torch
import transformers
from peft import LoraConfig, get_peft_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lora_reference  # noqa: E402  (randomize_lora, greedy, prompt lengths)
import quant_reference  # noqa: E402  (the NF4 quantizer and its quantization_config)
import reference  # noqa: E402  (the base model)

BASE = "gemma-7b-mha"
QUANT_CONFIG, NF4_DOUBLE = quant_reference.CASES["nf4-double"]
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ADAPTERS = {
    "qlora-r16": dict(r=16, lora_alpha=16, lora_dropout=0.05, target_modules=PROJECTIONS, task_type="CAUSAL_LM"),
    "qv-r8": dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]),
}


def write_nf4_base(base, base_dir):
    """Writes the NF4 checkpoint; returns the base model holding the dequantized weights."""
    os.makedirs(base_dir)
    cfg = base.config.to_dict()
    cfg["quantization_config"] = QUANT_CONFIG
    with open(os.path.join(base_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    stored, deq = {}, {}
    for key, w in base.state_dict().items():
        if key == "lm_head.weight" and base.config.tie_word_embeddings:
            continue
        module = key[:-len(".weight")]
        if not any(module.endswith("." + p) for p in PROJECTIONS):
            stored[key] = w.contiguous()
            continue
        tensors, dq = NF4_DOUBLE(w, 0)
        for suffix, t in tensors.items():
            stored[module + "." + suffix] = t.contiguous()
        deq[key] = dq.float().contiguous()
    safetensors.torch.save_file(stored, os.path.join(base_dir, "model.safetensors"), metadata={"format": "pt"})
    model = copy.deepcopy(base)
    missing, unexpected = model.load_state_dict(deq, strict=False)
    assert not unexpected and len(deq) == 7 * base.config.num_hidden_layers, unexpected
    model.config._attn_implementation = "eager"
    return model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (created)")
    args = ap.parse_args()
    reference.start_cpu_run(args.out)

    base = write_nf4_base(reference.new_model(BASE), os.path.join(args.out, "base"))
    models = {"": base}
    adapters = []
    for i, (name, kwargs) in enumerate(ADAPTERS.items()):
        lora = get_peft_model(copy.deepcopy(base), LoraConfig(bias="none", **kwargs))
        lora_reference.randomize_lora(lora, reference.SEEDS[BASE] * 10 + 500 + i)
        adapter_dir = os.path.join(args.out, "adapters", name)
        lora.save_pretrained(adapter_dir)
        models[name] = lora.eval()  # unmerged: the base's output plus the adapter's
        adapters.append({"name": name, "dir": os.path.relpath(adapter_dir, args.out), "r": kwargs["r"],
                         "targets": kwargs["target_modules"]})

    g = torch.Generator().manual_seed(reference.SEEDS[BASE] + 501)
    manifest = {"version": 1, "peft": peft.__version__, "transformers": transformers.__version__,
                "base_dir": "base", "model_type": base.config.model_type, "vocab_size": reference.VOCAB,
                "adapters": adapters}
    lora_reference.record_runs(models, g, args.out, "", manifest)
    reference.write_manifest(args.out, manifest)


if __name__ == "__main__":
    main()
