#!/usr/bin/env bash
# loupe against a real vLLM server (vLLM 0.32 for the CPU): bench, profile, bench --profile,
# and after each that the server is left idle (a new /start_profile is accepted, not 409).
#   scripts/vllm_cpu_check.sh VLLM_VENV [PEERS_PYTHON]
# VLLM_VENV: a virtual environment with vLLM for the CPU (shared/tools/install-vllm-cpu.sh makes
# one); PEERS_PYTHON: a python with torch, transformers and tokenizers, to write a tiny random
# Qwen2 checkpoint (default: python3). LOUPE: the loupe binary (default: target/debug/loupe).
# Not part of cargo test: vLLM takes minutes to start on a CPU.
# Last run (2026-12-02, vLLM 0.32.0 CPU wheel, 2-vCPU machine shared with other builds,
# loupe's debug build; twice, the second with the build that added TensorRT-LLM/Dynamo and the
# sweep's Ctrl-C listener): ready after 133 s and 145 s; bench, `profile start --num-steps 5 --wait`,
# unbounded `profile start` + `profile stop --output-dir`, `bench --profile
# --profile-num-steps 10` all passed; the idle check (a fresh /start_profile answered 200,
# not 409) passed after each; every step listed vLLM's files (rank0.<ns>.pt.trace.json.gz,
# the API server's async_llm trace, the profiler_out.txt tables) and summarised the rank
# trace (CPU ops; no GPU kernels on a CPU). "all checks passed".
set -euo pipefail
VENV=${1:-${VLLM_VENV:?usage: vllm_cpu_check.sh VLLM_VENV [PEERS_PYTHON]}}
PY=${2:-${PEERS_PYTHON:-python3}}
LOUPE=${LOUPE:-target/debug/loupe}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
TRACES=$T/traces
mkdir -p "$TRACES"
cleanup() { [ -n "${VLLM_PID:-}" ] && kill "$VLLM_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT

step() { printf '\n=== %s\n' "$*"; }
# The server is idle when a fresh start is accepted; stop it again at once.
idle() {
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/start_profile")
  curl -s -X POST "$URL/stop_profile" >/dev/null
  echo "server idle check: /start_profile -> $code (409 would mean a session was left running)"
  [ "$code" = 200 ]
}

step "checkpoint"
"$PY" "$HERE/make_tiny_qwen2.py" "$T/model"

step "vllm serve on $URL (profiler dir $TRACES)"
VLLM_TARGET_DEVICE=cpu VLLM_CPU_KVCACHE_SPACE=1 HF_HUB_OFFLINE=1 \
  "$VENV/bin/vllm" serve "$T/model" --host 127.0.0.1 --port "$PORT" --max-model-len 2048 \
  --dtype float32 --served-model-name tiny-qwen2 \
  --profiler-config "{\"profiler\":\"torch\",\"torch_profiler_dir\":\"$TRACES\"}" \
  >"$T/vllm.log" 2>&1 &
VLLM_PID=$!
for _ in $(seq 600); do
  curl -sf "$URL/health" >/dev/null && break
  kill -0 "$VLLM_PID" 2>/dev/null || { tail -40 "$T/vllm.log"; exit 1; }
  sleep 1
done
curl -sf "$URL/health" >/dev/null || { tail -40 "$T/vllm.log"; exit 1; }
echo "ready after ${SECONDS}s"

BENCH=("$LOUPE" bench --backend vllm --base-url "$URL" --tokenizer "$T/model" --dataset-name random-ids
       --num-prompts 8 --random-input-len 32 --random-output-len 16 --disable-tqdm)

step "loupe bench"
"${BENCH[@]}" --output-file "$T/bench.jsonl"
idle

step "loupe profile start --num-steps 5 --wait (vLLM stops by itself; loupe clears its guard)"
"$LOUPE" profile start --url "$URL" --num-steps 5 --wait --timeout 300 --output-dir "$TRACES" &
PROFILE_PID=$!
sleep 2
"${BENCH[@]}" --output-file "$T/load.jsonl" >/dev/null
wait "$PROFILE_PID"
idle

step "loupe profile start (unbounded), load, loupe profile stop"
"$LOUPE" profile start --url "$URL" --num-steps 0
"${BENCH[@]}" --output-file "$T/load.jsonl" >/dev/null
"$LOUPE" profile stop --url "$URL" --output-dir "$TRACES"
idle

step "loupe bench --profile --profile-num-steps 10"
"${BENCH[@]}" --output-file "$T/profiled.jsonl" --profile --profile-num-steps 10 \
  --profile-output-dir "$TRACES"
idle

step "files vLLM wrote"
ls -la "$TRACES"
echo "all checks passed"
