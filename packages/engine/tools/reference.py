#!/usr/bin/env python3
"""Reference outputs from Hugging Face transformers for the engine's numerics tests.

For each case this builds a tiny random-weight model with transformers' own config
and model classes, saves it with save_pretrained (safetensors), loads it back with
from_pretrained in float32 with eager attention, and writes:

  <out>/<case>/model/                  the model directory the engine loads
  <out>/<case>/logits-<i>.f32          logits of prompt i at every position,
                                       [len, vocab] little-endian float32
  <out>/manifest.json                  cases, prompts, greedy outputs (written last)

Greedy references are transformers' generate() with do_sample=False, 64 new tokens
and EOS disabled. A greedy prompt is kept only when the reference's top-2 logit
margin stays above MIN_GREEDY_MARGIN at every step, so token-for-token equality
tests the engine and not f32 rounding of a coin-flip tie.

Usage: reference.py --out DIR [--case NAME ...] [--list]
"""

import argparse
import json
import os
import shutil
import struct
import sys

import safetensors.torch
import torch
import transformers
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3Config,
    Gemma3ForCausalLM,
    Gemma3ForConditionalGeneration,
    Gemma3TextConfig,
    GemmaConfig,
    GemmaForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

VOCAB = 1000
LOGIT_PROMPT_LENGTHS = [1, 7, 33, 129]
GREEDY_PROMPT_LENGTHS = [5, 21]
GREEDY_NEW_TOKENS = 64
MIN_GREEDY_MARGIN = 1e-3

# Config fields every case shares (a case's own kwargs override them).
COMMON = dict(vocab_size=VOCAB, bos_token_id=2, eos_token_id=1, pad_token_id=0, max_position_embeddings=512)

# name -> (config class, model class, config kwargs, storage dtype, save options);
# a variant names its base case instead of the classes and re-saves its weights.
CASES = {
    # Gemma 2B-like: multi-query attention (1 KV head), head_dim 256, GeGLU, tied head.
    "gemma-2b-mqa": (GemmaConfig, GemmaForCausalLM, dict(
        hidden_size=128, intermediate_size=512, num_hidden_layers=3, num_attention_heads=2,
        num_key_value_heads=1, head_dim=256), "float32", {}),
    # Gemma 7B-like: multi-head attention, head_dim 256 (heads * head_dim != hidden).
    "gemma-7b-mha": (GemmaConfig, GemmaForCausalLM, dict(
        hidden_size=192, intermediate_size=512, num_hidden_layers=2, num_attention_heads=3,
        num_key_value_heads=3, head_dim=256), "float32", {}),
    # Llama with grouped-query attention; intermediate 300 leaves a K tail in the down projection.
    "llama-gqa": (LlamaConfig, LlamaForCausalLM, dict(
        hidden_size=128, intermediate_size=300, num_hidden_layers=3, num_attention_heads=8,
        num_key_value_heads=2, tie_word_embeddings=False), "float32", {}),
    # Llama 3.1 rope scaling; original_max_position_embeddings 64 puts the head's
    # frequencies in all three bands (kept, smoothed, divided by factor).
    "llama31-rope": (LlamaConfig, LlamaForCausalLM, dict(
        hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=False, max_position_embeddings=1024,
        rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                             high_freq_factor=4.0, original_max_position_embeddings=64)), "float32", {}),
    # Linear rope scaling.
    "llama-linear-rope": (LlamaConfig, LlamaForCausalLM, dict(
        hidden_size=96, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, tie_word_embeddings=False,
        rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=4.0)), "float32", {}),
    # Qwen2: q/k/v biases, tied embeddings.
    "qwen2-bias": (Qwen2Config, Qwen2ForCausalLM, dict(
        hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=True,
        rope_parameters=dict(rope_type="default", rope_theta=1000000.0)), "float32", {}),
    # Mistral: GQA with one KV head and an explicit head_dim (36: not hidden/heads, not a multiple of 8).
    "mistral": (MistralConfig, MistralForCausalLM, dict(
        hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, head_dim=36, sliding_window=4096), "float32", {}),
    # Sliding windows are 16 tokens, so the 33- and 129-token prompts and the greedy
    # runs (21 + 64 tokens) reach well past them.
    # Gemma 2: soft-capped attention scores and final logits (caps low enough to bend
    # these models' values), alternating local/global layers, pre/post norms and a
    # query_pre_attn_scalar that is not head_dim.
    "gemma2-window": (Gemma2Config, Gemma2ForCausalLM, dict(
        hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, query_pre_attn_scalar=24, sliding_window=16,
        attn_logit_softcapping=8.0, final_logit_softcapping=6.0), "float32", {}),
    # Gemma 3 text: QK-norm, 5 local : 1 global (layer 6 is local again), local rope base
    # 10k and global 1M with linear scaling.
    "gemma3-window": (Gemma3TextConfig, Gemma3ForCausalLM, dict(
        hidden_size=128, intermediate_size=256, num_hidden_layers=7, num_attention_heads=4,
        num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=32, sliding_window=16,
        rope_parameters=dict(full_attention=dict(rope_type="linear", factor=8.0, rope_theta=1000000.0),
                             sliding_attention=dict(rope_type="default", rope_theta=10000.0))), "float32", {}),
    # The text model of a multimodal Gemma 3 checkpoint (text_config, weights under
    # model.language_model.), with a token vision tower beside it.
    "gemma3-multimodal": (Gemma3Config, Gemma3ForConditionalGeneration, dict(
        text_config=dict(vocab_size=VOCAB, hidden_size=128, intermediate_size=256, num_hidden_layers=6,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=64, sliding_window=16,
                         max_position_embeddings=512, bos_token_id=2, eos_token_id=1, pad_token_id=0),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=28, patch_size=14),
        mm_tokens_per_image=4, image_token_index=VOCAB + 2, boi_token_index=VOCAB, eoi_token_index=VOCAB + 1),
        "float32", {}),
    # Qwen3: QK-norm (plain RMSNorm per head), no biases, head_dim 32 != hidden / heads.
    "qwen3": (Qwen3Config, Qwen3ForCausalLM, dict(
        hidden_size=96, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, tie_word_embeddings=False,
        rope_parameters=dict(rope_type="default", rope_theta=1000000.0)), "float32", {}),
    # Qwen2.5 (0.5B-like): a Qwen2 config with its window fields set but use_sliding_window off.
    "qwen2.5": (Qwen2Config, Qwen2ForCausalLM, dict(
        hidden_size=128, intermediate_size=320, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=True, use_sliding_window=False, sliding_window=16,
        max_window_layers=2, rope_parameters=dict(rope_type="default", rope_theta=1000000.0)), "float32", {}),
    # Llama 3.2 (1B/3B-like): tied embeddings and llama3 rope scaling with its real parameters.
    "llama3.2": (LlamaConfig, LlamaForCausalLM, dict(
        hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, tie_word_embeddings=True, rms_norm_eps=1e-5,
        max_position_embeddings=131072,
        rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=32.0, low_freq_factor=1.0,
                             high_freq_factor=4.0, original_max_position_embeddings=8192)), "float32", {}),
    # Mistral with a sliding window on every layer.
    "mistral-window": (MistralConfig, MistralForCausalLM, dict(
        hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, sliding_window=16), "float32", {}),
    # Loader variants: bf16 and f16 storage (references come from the stored weights
    # upcast to f32, as the engine's CPU backend upcasts them), and a sharded checkpoint.
    "llama-gqa-bf16": ("llama-gqa", None, None, "bfloat16", {}),
    "mistral-f16": ("mistral", None, None, "float16", {}),
    "gemma-2b-mqa-sharded": ("gemma-2b-mqa", None, None, "float32", {"max_shard_size": "1MB"}),
    # The multimodal Gemma 3 with its tensors under "model.language_model." as
    # transformers 4.52-4.x saved them (5.x writes the Hub's "language_model.model.").
    "gemma3-multimodal-renamed": ("gemma3-multimodal", None, None, "float32", {"rename": [
        ("language_model.model.", "model.language_model."), ("language_model.lm_head.", "lm_head."),
        ("vision_tower.", "model.vision_tower."), ("multi_modal_projector.", "model.multi_modal_projector.")]}),
}

SEEDS = {name: 1000 + i for i, name in enumerate(CASES)}


def randomize(model, model_type, seed):
    """Replace transformers' small init with weights that give O(1) activations and
    peaked attention, so wrong masking or head mapping shows in the logits."""
    g = torch.Generator().manual_seed(seed)
    # Gemma applies norms as (1 + w), the others as w.
    gemma = model_type.startswith("gemma")
    norm_base = 0.0 if gemma else 1.0
    # A tied head scores each token against its own input embedding; small embeddings
    # (gemma's are also scaled by sqrt(hidden)) keep greedy decoding from echoing the
    # last token forever, and a larger final norm gain brings the logits back to O(1).
    tied = model.config.tie_word_embeddings
    embed_std = (0.01 if gemma else 0.02) if tied else 1.0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "vision_tower" in name or "multi_modal_projector" in name:
                continue  # a multimodal checkpoint's image side: text prompts never reach it
            if name in ("model.norm.weight", "model.language_model.norm.weight") and tied:
                p.copy_(norm_base - 1.0 + (0.2 / embed_std) * (1.0 + 0.2 * torch.randn(p.shape, generator=g)))
            elif name.endswith("norm.weight"):
                p.copy_(norm_base + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(embed_std * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / (p.shape[1] ** 0.5))


def new_model(name):
    """A base case's model with its seeded random weights, in float32."""
    config_cls, model_cls, kwargs, _, _ = CASES[name]
    torch.manual_seed(SEEDS[name])
    # A multimodal config carries the common fields in its text_config.
    config = config_cls(**(kwargs if "text_config" in kwargs else {**COMMON, **kwargs}))
    model = model_cls(config)
    randomize(model, config.model_type, SEEDS[name])
    return model


def build_model(name, out_dir):
    config_cls, model_cls, kwargs, dtype, save_opts = CASES[name]
    model_dir = os.path.join(out_dir, name, "model")
    if isinstance(config_cls, str):
        # A variant re-saves its base case's weights.
        base_dir = os.path.join(out_dir, config_cls, "model")
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    else:
        model = new_model(name)
    model = model.to(getattr(torch, dtype))
    save_opts = dict(save_opts)
    rename = save_opts.pop("rename", None)
    model.save_pretrained(model_dir, **save_opts)
    if rename:
        path = os.path.join(model_dir, "model.safetensors")
        tensors = safetensors.torch.load_file(path)
        renamed = {}
        for k, v in tensors.items():
            for old, new in rename:
                if k.startswith(old):
                    k = new + k[len(old):]
                    break
            renamed[k] = v
        safetensors.torch.save_file(renamed, path, metadata={"format": "pt"})
    return model_dir


def load_reference(model_dir):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return model


def global_inv_freq(model):
    """The rotary frequencies of the full-attention layers (Gemma 3 keeps one set per layer type)."""
    text = getattr(model.model, "language_model", model.model)
    rotary = text.rotary_emb
    return rotary.inv_freq if hasattr(rotary, "inv_freq") else rotary.full_attention_inv_freq


def write_f32(path, tensor):
    flat = tensor.detach().to(torch.float32).contiguous().view(-1).tolist()
    with open(path, "wb") as f:
        f.write(struct.pack("<%df" % len(flat), *flat))


def greedy(model, prompt):
    """Greedy continuation and the smallest top-2 margin over its steps."""
    ids = torch.tensor([prompt])
    model.generation_config.eos_token_id = None
    out = model.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=GREEDY_NEW_TOKENS, do_sample=False,
        pad_token_id=0, output_scores=True, return_dict_in_generate=True)
    tokens = out.sequences[0, len(prompt):].tolist()
    margin = min(float(s[0].topk(2).values[0] - s[0].topk(2).values[1]) for s in out.scores)
    return tokens, margin


def make_case(name, out_dir):
    model_dir = build_model(name, out_dir)
    model = load_reference(model_dir)
    base = CASES[name][0] if isinstance(CASES[name][0], str) else name
    g = torch.Generator().manual_seed(SEEDS[base] + 7)
    case = {"model_dir": os.path.relpath(model_dir, out_dir), "vocab_size": VOCAB,
            "model_type": model.config.model_type, "dtype": CASES[name][3], "prompts": [], "greedy": [],
            "inv_freq": global_inv_freq(model).tolist()}
    with torch.no_grad():
        for i, n in enumerate(LOGIT_PROMPT_LENGTHS):
            prompt = torch.randint(3, VOCAB, (n,), generator=g).tolist()
            logits = model(torch.tensor([prompt])).logits[0]
            rel = os.path.join(name, "logits-%d.f32" % i)
            write_f32(os.path.join(out_dir, rel), logits)
            case["prompts"].append({"ids": prompt, "logits": rel, "rows": n})
        for n in GREEDY_PROMPT_LENGTHS:
            for attempt in range(20):
                prompt = torch.randint(3, VOCAB, (n,), generator=g).tolist()
                tokens, margin = greedy(model, prompt)
                if margin >= MIN_GREEDY_MARGIN:
                    break
            else:
                raise SystemExit("%s: no greedy prompt of length %d without near-ties" % (name, n))
            assert len(tokens) == GREEDY_NEW_TOKENS, "EOS was not disabled"
            case["greedy"].append({"prompt": prompt, "tokens": tokens, "min_margin": margin})
    return case


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="output directory (created)")
    ap.add_argument("--case", action="append", help="case to build (default: all)")
    ap.add_argument("--list", action="store_true", help="print the case names and exit")
    args = ap.parse_args()
    if args.list:
        print("\n".join(CASES))
        return
    if not args.out:
        ap.error("--out is required")
    names = []
    for n in args.case or list(CASES):
        if n not in CASES:
            ap.error("unknown case %r (see --list)" % n)
        base = CASES[n][0]
        # A variant re-saves its base case's weights, so the base is built first.
        for m in ([base] if isinstance(base, str) else []) + [n]:
            if m not in names:
                names.append(m)
    start_cpu_run(args.out)
    manifest = {"version": 1, "transformers": transformers.__version__,
                "torch": torch.__version__, "cases": {}}
    for n in names:
        shutil.rmtree(os.path.join(args.out, n), ignore_errors=True)
        manifest["cases"][n] = make_case(n, args.out)
        print("built", n, file=sys.stderr)
    write_manifest(args.out, manifest)


def start_cpu_run(out):
    """What every reference script does first: transformers quiet, at most 2 threads
    (the CI box's cores), the output folder made."""
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    os.makedirs(out, exist_ok=True)


def write_manifest(out, manifest):
    """manifest.json, written last and atomically: the tests take its presence to mean
    the folder is whole."""
    with open(os.path.join(out, "manifest.json.tmp"), "w") as f:
        json.dump(manifest, f)
    os.replace(os.path.join(out, "manifest.json.tmp"), os.path.join(out, "manifest.json"))


if __name__ == "__main__":
    main()
