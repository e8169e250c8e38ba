#!/usr/bin/env bash
# `loupe bench one-batch` beside the engine's own forward benchmark (crates/engine/benches/
# forward.rs) for the same model, batch, prompt length, decode steps and threads, and
# one-batch with profiling on vs off; runs alternate, each figure is the median over ROUNDS.
#
#   scripts/bench_one_batch.sh [model]        (default small; tiny for a quick look)
#   env: BATCHES="1 8 32"  INPUT_LEN=128  OUTPUT_LEN=33  THREADS=$(nproc)  ROUNDS=3
#
# The forward benchmark reports the best of three passes over the decode steps (mean step);
# one-batch reports the median step of its own timed loop. Profiling on records every decode
# step (--profile-start-step 0 --profile-steps OUTPUT_LEN-1, CPU and GPU lanes, shapes); its
# trace is written after the last step, outside the timed steps, as upstream does.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
model=${1:-small}
BATCHES=${BATCHES:-1 8 32}
INPUT_LEN=${INPUT_LEN:-128}
OUTPUT_LEN=${OUTPUT_LEN:-33}
THREADS=${THREADS:-$(nproc)}
ROUNDS=${ROUNDS:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo build -q --release -p loupe
cargo bench -q -p loupe-engine --bench forward --no-run 2>/dev/null
steps=$((OUTPUT_LEN - 1))
for b in $BATCHES; do
  for r in $(seq "$ROUNDS"); do
    cargo bench -q -p loupe-engine --bench forward -- --model "$model" --batches "$b" \
      --prompt-len "$INPUT_LEN" --decode-steps "$steps" --threads "$THREADS" \
      --decode-only --record-every 0 2>/dev/null > "$out/fwd-$b-$r.json"
    target/release/loupe --log-level warn bench one-batch --model-path "$model" --threads "$THREADS" \
      --batch-size "$b" --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" \
      --result-filename "$out/ob-$b.jsonl" > /dev/null
    SGLANG_TORCH_PROFILER_DIR="$out/prof" target/release/loupe --log-level warn bench one-batch \
      --model-path "$model" --threads "$THREADS" --batch-size "$b" --input-len "$INPUT_LEN" \
      --output-len "$OUTPUT_LEN" --profile --profile-record-shapes --profile-stage decode \
      --profile-start-step 0 --profile-steps "$steps" --result-filename "$out/obp-$b.jsonl" > /dev/null
  done
done
python3 - "$out" "$model" "$INPUT_LEN" "$OUTPUT_LEN" "$THREADS" $BATCHES <<'PY'
import json, statistics, sys, glob
out, model, il, ol, threads, *batches = sys.argv[1:]
def lines(p): return [json.loads(l) for l in open(p)]
print(f"\n### one-batch vs the forward benchmark, {model}, input {il}, output {ol}, {threads} threads")
print("| batch | forward bench step (ms) | one-batch median step (ms) | one-batch / forward | "
      "one-batch profiled step (ms) | profiling cost per step |")
print("|---|---|---|---|---|---|")
for b in batches:
    fwd = [json.load(open(p))["decode"][0]["median_step_s"] * 1e3
           for p in sorted(glob.glob(f"{out}/fwd-{b}-*.json"))]
    ob = [r["median_decode_latency"] * 1e3 for r in lines(f"{out}/ob-{b}.jsonl")]
    obp = [r["median_decode_latency"] * 1e3 for r in lines(f"{out}/obp-{b}.jsonl")]
    f, o, p = (statistics.median(x) for x in (fwd, ob, obp))
    print(f"| {b} | {f:.3f} | {o:.3f} | {o / f:.3f} | {p:.3f} | {p - o:+.3f} ms ({(p / o - 1) * 100:+.1f}%) |")
PY
echo "elapsed: $(( $(date +%s) - start )) s (load average: $(cut -d" " -f1-3 /proc/loadavg))"
