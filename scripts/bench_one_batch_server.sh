#!/usr/bin/env bash
# SGLang's `python -m sglang.benchmark.one_batch_server` and `loupe bench one-batch-server`
# against the same `loupe serve` (release build), same cases, runs alternating; prints each
# figure's median over ROUNDS for both tools and their ratio.
#
#   scripts/bench_one_batch_server.sh [model]   (default tiny)
#   env: BATCHES="1 8 32"  INPUT_LEN=256  OUTPUT_LEN=32  THREADS=$(nproc)  ROUNDS=3  REPEAT=1
#        (REPEAT: each batch size that many times per run, as upstream sweeps a repeated
#        --batch-size value: more samples per process start)
#        PYTHON (default .venv-peers/bin/python; scripts/install-python-peers.sh)
#
# Both tools send `--dataset-name random-ids` batches (same shapes; the ids differ, which the
# dummy-weight engine's timing does not see) with warmup skipped; one unrecorded round of each
# warms the server first. SGLang's tool needs its tokenizer and a model directory: loupe
# serve's /server_info names the preset's exported tokenizer directory (config.json beside it).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-tiny}
BATCHES=${BATCHES:-1 8 32}
INPUT_LEN=${INPUT_LEN:-256}
OUTPUT_LEN=${OUTPUT_LEN:-32}
THREADS=${THREADS:-$(nproc)}
ROUNDS=${ROUNDS:-3}
REPEAT=${REPEAT:-1}
PYTHON=${PYTHON:-.venv-peers/bin/python}
out=$(mktemp -d)
pydeps="$out/pydeps"
"$PYTHON" -c "import tabulate" 2>/dev/null || "$PYTHON" -m pip install -q --target "$pydeps" tabulate
cargo build -q --release -p loupe
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/loupe serve --model-path "$model" --threads "$THREADS" --port "$port" \
  --enable-metrics > "$out/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$out"' EXIT
url="http://127.0.0.1:$port"
until curl -sf "$url/health" > /dev/null; do sleep 0.2; done
model_dir=$(curl -s "$url/server_info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokenizer_path"])')
sweep=$(for b in $BATCHES; do for _ in $(seq "$REPEAT"); do printf '%s ' "$b"; done; done)
cases=(--batch-size $sweep --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" \
       --dataset-name random-ids --skip-warmup)
sglang() {
  PYTHONPATH="scripts/peers/sglang_no_launch:$pydeps" HF_HUB_OFFLINE=1 "$PYTHON" -m \
    sglang.benchmark.one_batch_server --model-path "$model_dir" --device cpu --base-url "$url" \
    "${cases[@]}" --result-filename "$1" > /dev/null 2>&1
}
loupe() {
  target/release/loupe --log-level warn bench one-batch-server --base-url "$url" "${cases[@]}" \
    --result-filename "$1" > /dev/null
}
sglang "$out/warm.jsonl"; loupe "$out/warm.jsonl"
# Alternating, and the order swapped every round.
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then
    sglang "$out/sglang.jsonl"; loupe "$out/loupe.jsonl"
  else
    loupe "$out/loupe.jsonl"; sglang "$out/sglang.jsonl"
  fi
done
"$PYTHON" - "$out" "$model" "$THREADS" <<'PY'
import json, statistics, sys
out, model, threads = sys.argv[1:]
def load(name):
    rows = {}
    for l in open(f"{out}/{name}.jsonl"):
        r = json.loads(l)
        rows.setdefault((r["batch_size"], r["input_len"], r["output_len"]), []).append(r)
    return rows
s, l = load("sglang"), load("loupe")
keys = ["latency", "last_ttft", "input_throughput", "output_throughput", "overall_throughput"]
print(f"samples per case and tool: {len(next(iter(s.values())))}; load average: {open('/proc/loadavg').read().split()[:3]}")
print(f"\n### one_batch_server: SGLang's tool vs loupe's against the same loupe serve ({model}, {threads} threads)")
print("| case (bs, il, ol) | " + " | ".join(f"{k} sglang / loupe / ratio" for k in keys) + " |")
print("|---|" + "---|" * len(keys))
for case in sorted(s):
    cells = []
    for k in keys:
        a = statistics.median(r[k] for r in s[case])
        b = statistics.median(r[k] for r in l[case])
        cells.append(f"{a:.4g} / {b:.4g} / {b / a:.3f}")
    print(f"| {case} | " + " | ".join(cells) + " |")
PY
