#!/usr/bin/env bash
# SGLang's own benchmark client against `loupe serve`, unchanged: the native backend and the
# two OpenAI-compatible ones. Fails if any request fails. Needs the Python peers
# (scripts/install-python-peers.sh; PYTHON defaults to .venv-peers/bin/python).
#
#   scripts/check_sglang_client.sh [model]      (default: tiny)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv-peers/bin/python}
PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"   # absolute: the runs happen elsewhere
model=${1:-tiny}
port=${PORT:-30077}
cargo build -q --release
work=$(mktemp -d)
./target/release/loupe serve --model-path "$model" --port "$port" > "$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
for backend in sglang sglang-oai sglang-oai-chat; do
  (cd "$work" && "$PYTHON" -m sglang.benchmark.serving --backend "$backend" --base-url "http://127.0.0.1:$port" \
      --dataset-name random-ids --num-prompts 100 --random-input-len 256 --random-output-len 32 \
      --output-file "$work/$backend.jsonl" > "$work/$backend.log" 2>&1) || { cat "$work/$backend.log"; exit 1; }
  "$PYTHON" - "$backend" "$work/$backend.jsonl" <<'PY'
import json, sys
r = json.loads(open(sys.argv[2]).read().splitlines()[-1])
assert r["completed"] == 100, f"{sys.argv[1]}: {r['completed']} of 100 requests completed"
print(f"{sys.argv[1]:>16}: {r['completed']} requests, {r['total_output_tokens']} output tokens, "
      f"{r['output_throughput']:.0f} tok/s, mean TTFT {r['mean_ttft_ms']:.1f} ms, mean TPOT {r['mean_tpot_ms']:.2f} ms")
PY
done
