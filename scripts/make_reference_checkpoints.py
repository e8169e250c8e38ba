#!/usr/bin/env python3
"""Build the tiny reference checkpoints and their logits with Hugging Face transformers.

Writes crates/engine/tests/data/{llama,qwen2}/: config.json, safetensors weights and
reference.json (logits of every prompt position, then of several greedy decode steps).
loupe's tests load the same files and must match these logits within 1e-4.

    python scripts/make_reference_checkpoints.py      # needs torch, transformers, safetensors

The Llama checkpoint is f32, sharded with an index, llama3 RoPE scaling, written with the
older `rope_theta` + `rope_scaling` keys; the Qwen2 one is bf16 in one file with tied
embeddings, q/k/v biases and linear RoPE scaling in transformers 5's `rope_parameters`.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "engine", "tests", "data")
PROMPT = [5, 17, 42, 99, 3, 250, 7, 7, 128, 64, 31, 200]
DECODE_STEPS = 4


def perturb(model, seed):
    """Random weights large enough that logits differ meaningfully between tokens."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def reference(model):
    model.eval()
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        out = model(ids, use_cache=True)
        prefill = out.logits[0].tolist()
        past = out.past_key_values
        nxt = int(out.logits[0, -1].argmax())
        steps = []
        for _ in range(DECODE_STEPS):
            out = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[0, -1]
            steps.append({"input_token": nxt, "logits": logits.tolist()})
            nxt = int(logits.argmax())
    return {"prompt": PROMPT, "prefill_logits": prefill, "decode": steps}


def write(name, config, dtype, shard, old_style_rope=None):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").to(torch.float32)
    perturb(model, seed=len(name))
    # Round through the storage dtype so the reference sees exactly the stored weights.
    state = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=False)
    if config.tie_word_embeddings:
        model.tie_weights()
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    cfg = json.loads(config.to_json_string())
    cfg["architectures"] = [type(model).__name__]
    cfg["torch_dtype"] = str(dtype).removeprefix("torch.")
    if old_style_rope is not None:
        params = cfg.pop("rope_parameters")
        cfg["rope_theta"] = params.pop("rope_theta")
        cfg["rope_scaling"] = params
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    names = sorted(state)
    if shard:
        half = len(names) // 2
        parts = {"model-00001-of-00002.safetensors": names[:half],
                 "model-00002-of-00002.safetensors": names[half:]}
        weight_map = {}
        for fname, keys in parts.items():
            save_file({k: state[k] for k in keys}, os.path.join(d, fname), metadata={"format": "pt"})
            weight_map.update({k: fname for k in keys})
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2, sort_keys=True)
    else:
        save_file(state, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    ref = reference(model)
    ref["generator"] = f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, eager attention, float32"
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f)
    print(name, "written to", os.path.normpath(d), file=sys.stderr)


common = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=256, max_position_embeddings=512, rms_norm_eps=1e-5,
              bos_token_id=1, eos_token_id=2)
write("llama", LlamaConfig(**common, rope_parameters={
    "rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
    "high_freq_factor": 4.0, "original_max_position_embeddings": 256}, tie_word_embeddings=False),
    torch.float32, shard=True, old_style_rope=True)
write("qwen2", Qwen2Config(**common, rope_parameters={"rope_type": "linear", "rope_theta": 1000000.0, "factor": 2.0},
    tie_word_embeddings=True, use_sliding_window=False), torch.bfloat16, shard=False)
