#!/usr/bin/env python3
"""The transformers (PyTorch, CPU, float32) side of scripts/bench_engine.sh: decode tokens/s at
several batch sizes after a prompt, and prefill tokens/s, for a config.json. Same shapes and
the same greedy argmax per step as loupe's crates/engine/benches/forward.rs. Prints JSON."""
import argparse
import json
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM

p = argparse.ArgumentParser()
p.add_argument("--config", required=True)
p.add_argument("--batches", default="1,8,32,64")
p.add_argument("--prompt-len", type=int, default=128)
p.add_argument("--decode-steps", type=int, default=32)
p.add_argument("--prefill-len", type=int, default=512)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()

torch.set_num_threads(a.threads)
config = AutoConfig.from_pretrained(a.config)
model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
vocab = config.vocab_size


def decode(batch):
    ids = torch.randint(3, vocab, (batch, a.prompt_len))
    out = model(ids, use_cache=True)
    past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
    t0 = time.perf_counter()
    for _ in range(a.decode_steps):
        out = model(nxt, past_key_values=past, use_cache=True)
        past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
    return batch * a.decode_steps / (time.perf_counter() - t0)


with torch.inference_mode():
    decode(1)  # warm-up
    results = []
    for b in [int(x) for x in a.batches.split(",")]:
        tps = decode(b)
        print(f"transformers decode batch {b:>3}: {tps:>10.1f} tok/s", file=__import__("sys").stderr)
        results.append({"batch": b, "tokens_per_s": tps})
    best = float("inf")
    for _ in range(3):
        ids = torch.randint(3, vocab, (1, a.prefill_len))
        t0 = time.perf_counter()
        model(ids, use_cache=True)
        best = min(best, time.perf_counter() - t0)

print(json.dumps({
    "engine": "transformers", "version": __import__("transformers").__version__, "torch": torch.__version__,
    "threads": a.threads, "decode": results,
    "prefill": {"tokens": a.prefill_len, "tokens_per_s": a.prefill_len / best},
}))
