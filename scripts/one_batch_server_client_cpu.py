"""CPU time that sglang.benchmark.one_batch_server's client spends inside its own timed region.

Sends upstream's batched /generate (random token ids, ignore_eos, stream_interval 1) the way
its run_one_case does (requests.post(stream=True), iter_lines, json.loads, validate_finish_reason,
BatchStreamRecorder.record_chunk per line) and reports, per case, the request's latency and the
client process's CPU time over the same span (time.process_time). On a machine whose cores the
server's compute threads fill, that CPU is taken from the server being measured.

    python scripts/one_batch_server_client_cpu.py --base-url http://127.0.0.1:30000 \
        --batch-size 1 8 32 --input-len 256 --output-len 32 --repeat 5
"""

import argparse
import json
import random
import statistics
import time

import requests
from sglang.benchmark.one_batch_server import validate_finish_reason
from sglang.benchmark.stream_metrics import BatchStreamRecorder


def one(url, bs, il, ol, vocab):
    ids = [[random.randrange(3, vocab) for _ in range(il)] for _ in range(bs)]
    payload = {
        "sampling_params": {"temperature": 0.0, "max_new_tokens": ol, "ignore_eos": True,
                            "json_schema": None, "stream_interval": 1},
        "return_logprob": False,
        "stream": True,
        "input_ids": ids,
    }
    cpu0 = time.process_time()
    tic = time.perf_counter()
    chunks = 0
    with requests.post(url + "/generate", json=payload, stream=True, timeout=600) as r:
        r.raise_for_status()
        rec = BatchStreamRecorder(batch_size=bs)
        for chunk in r.iter_lines(decode_unicode=False):
            chunk = chunk.decode("utf-8")
            if chunk and chunk.startswith("data:"):
                if chunk == "data: [DONE]":
                    break
                data = json.loads(chunk[5:].strip("\n"))
                fr = data["meta_info"]["finish_reason"]
                if fr is not None:
                    validate_finish_reason(fr, ignore_eos=True)
                rec.record_chunk(index=data["index"],
                                 completion_tokens=data["meta_info"]["completion_tokens"],
                                 finish_type=fr["type"] if fr is not None else None,
                                 now=time.perf_counter())
                chunks += 1
    latency = time.perf_counter() - tic
    return latency, time.process_time() - cpu0, chunks


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--batch-size", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--input-len", type=int, default=256)
    p.add_argument("--output-len", type=int, default=32)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    info = requests.get(a.base_url + "/server_info", timeout=30).json()
    vocab = min(int((info.get("hf_config") or {}).get("vocab_size") or 512), 10000)
    one(a.base_url, 1, 16, 2, vocab)  # connection and server warm
    print("| batch | latency (ms) | client CPU in it (ms) | share | chunks | client CPU per chunk (us) |")
    print("|---|---|---|---|---|---|")
    for bs in a.batch_size:
        runs = [one(a.base_url, bs, a.input_len, a.output_len, vocab) for _ in range(a.repeat)]
        lat = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        n = runs[0][2]
        print(f"| {bs} | {lat * 1e3:.1f} | {cpu * 1e3:.1f} | {cpu / lat:.0%} | {n} | {cpu / n * 1e6:.0f} |")


if __name__ == "__main__":
    main()
