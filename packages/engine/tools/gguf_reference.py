"""transformers on a GGUF file: the reference for the engine's GGUF path.

Reads a JSON request on stdin: {"gguf": path, "prompts": [[ids...], ...],
"new_tokens": N, "out": dir}. Loads the GGUF with transformers' own loader
(AutoModelForCausalLM.from_pretrained(dir, gguf_file=...), which dequantizes it with
the gguf package) in float32 with eager attention, and for each prompt writes:
  - the greedy continuation of N tokens, EOS disabled (generate(), one batch,
    left-padded), and the smallest top-1/top-2 logit margin over its steps;
  - the f32 logits of the prompt's last position, to out/logits-<i>.f32.
Prints {"tokens": [...], "margins": [...], "seconds": {...}} as JSON.
"""
import json
import os
import struct
import sys
import time

import torch
from transformers import AutoModelForCausalLM

torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
req = json.load(sys.stdin)
t0 = time.time()
model = AutoModelForCausalLM.from_pretrained(
    os.path.dirname(req["gguf"]), gguf_file=os.path.basename(req["gguf"]), dtype=torch.float32,
    attn_implementation="eager")
model.eval()
model.generation_config.eos_token_id = None
t1 = time.time()

prompts = req["prompts"]
width = max(len(p) for p in prompts)
pad = 0
ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
with torch.no_grad():
    out = model.generate(ids, attention_mask=mask, max_new_tokens=req["new_tokens"], do_sample=False,
                         pad_token_id=pad, output_logits=True, return_dict_in_generate=True)
t2 = time.time()
tokens = out.sequences[:, width:].tolist()
margins = []
for i in range(len(prompts)):
    steps = [l[i].topk(2).values for l in out.logits]
    margins.append(min(float(s[0] - s[1]) for s in steps))
    # The first step's logits are those of the prompt's last position.
    flat = out.logits[0][i].to(torch.float32).tolist()
    with open(os.path.join(req["out"], "logits-%d.f32" % i), "wb") as f:
        f.write(struct.pack("<%df" % len(flat), *flat))
print(json.dumps({"tokens": tokens, "margins": margins,
                  "seconds": {"load": round(t1 - t0, 1), "generate": round(t2 - t1, 1)}}))
