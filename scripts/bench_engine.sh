#!/usr/bin/env bash
# loupe's engine beside Hugging Face transformers (PyTorch on the CPU, float32), same config,
# same shapes, same thread count, in one run. Prints a side-by-side table with ratios.
#
#   scripts/bench_engine.sh [tiny|small ...]       (default: tiny small)
#
# Decode is measured after a prompt of each length in PROMPTS (default "128 512"): short
# contexts show the projections, longer ones the attention and KV-cache handling too.
#
# Needs the Python peers (scripts/install-python-peers.sh; PYTHON defaults to .venv-peers).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv-peers/bin/python}
THREADS=${THREADS:-$(nproc)}
BATCHES=${BATCHES:-1,8,32,64}
PROMPTS=${PROMPTS:-128 512}
models=("${@:-tiny}")
[ $# -eq 0 ] && models=(tiny small)
out=$(mktemp -d)
cargo build --release --benches -p loupe-engine >/dev/null 2>&1 || cargo bench -p loupe-engine --bench forward --no-run
for m in "${models[@]}"; do
for p in $PROMPTS; do
  # loupe with the preset's weight dtype (bfloat16, widened to f32 in registers), loupe with
  # float32 weights, and transformers in float32, one after the other on the same machine.
  common=(--model "$m" --batches "$BATCHES" --threads "$THREADS" --prompt-len "$p")
  cargo bench -q -p loupe-engine --bench forward -- "${common[@]}" \
      --write-config "$out/$m-config.json" > "$out/$m-loupe.json"
  cargo bench -q -p loupe-engine --bench forward -- "${common[@]}" --dtype float32 > "$out/$m-loupe-f32.json"
  "$PYTHON" scripts/bench_transformers.py --config "$out/$m-config.json" --batches "$BATCHES" \
      --threads "$THREADS" --prompt-len "$p" > "$out/$m-hf.json"
  "$PYTHON" - "$m" "$out/$m-loupe.json" "$out/$m-loupe-f32.json" "$out/$m-hf.json" <<'PY'
import json, sys
m = sys.argv[1]
lo, lf, hf = (json.load(open(p)) for p in sys.argv[2:5])
print(f"\n### {m}, decode after a {lo['prompt_len']}-token prompt ({lo['threads']} threads; "
      f"transformers {hf['version']}, torch {hf['torch']}, float32)")
print(f"| workload | loupe ({lo['weight_dtype']} weights) tok/s | loupe (float32 weights) tok/s | transformers tok/s "
      f"| loupe / transformers | loupe projections GFLOP/s (of gemm peak) |")
print("|---|---|---|---|---|---|")
for l, f, h in zip(lo["decode"], lf["decode"], hf["decode"]):
    print(f"| decode batch {l['batch']} | {l['tokens_per_s']:.1f} | {f['tokens_per_s']:.1f} | {h['tokens_per_s']:.1f} "
          f"| {l['tokens_per_s']/h['tokens_per_s']:.2f}x ({f['tokens_per_s']/h['tokens_per_s']:.2f}x) "
          f"| {l['projection_gflops']:.1f} ({100*l['gemm_peak_fraction']:.0f}%) |")
lp, fp, hp = lo["prefill"], lf["prefill"], hf["prefill"]
print(f"| prefill {lp['tokens']} tokens | {lp['tokens_per_s']:.1f} | {fp['tokens_per_s']:.1f} | {hp['tokens_per_s']:.1f} "
      f"| {lp['tokens_per_s']/hp['tokens_per_s']:.2f}x ({fp['tokens_per_s']/hp['tokens_per_s']:.2f}x) | |")
so = lo["scheduler_overhead"]
print(f"\ngemm's own peak (1024x1024x1024, {lo['threads']} threads): {lo['gemm_peak_gflops']:.1f} GFLOP/s. "
      f"Scheduler overhead at decode batch {so['batch']}: {100*so['fraction']:.2f}% of step time "
      f"(step {so['mean_step_ms']:.3f} ms: schedule {so['mean_schedule_ms']:.3f} ms, process outputs "
      f"{so['mean_process_ms']:.3f} ms; {so['steps']} steps)")
PY
done
done
