#!/usr/bin/env bash
# `loupe trace` beside the decompression limit (`gzip -dc > /dev/null`) and Python on the same
# files, in one run: throughput and peak RSS (/usr/bin/time -v's "Maximum resident set size").
#
#   scripts/bench_trace.sh                 # a 1 GB set (2 ranks) with every tool, then a 4 GB
#                                          # set (4 ranks) with loupe and gzip only
#   SIZES_GB="1" scripts/bench_trace.sh    # only the 1 GB set
#   LOUPE_BASE=path/to/old/loupe scripts/bench_trace.sh
#                                          # also time an older binary's summary beside this
#                                          # one's (the analyses' budget: at most 1.3x)
#
#   QUICK=1 scripts/bench_trace.sh         # gzip, summary (and the older summary) and HTA only
#
# On the 1 GB set HTA 0.5.0 (scripts/bench_hta.py: load, temporal/idle/overlap/launch/kernel
# breakdowns) runs too, unless HTA=0; it needs several GB of memory per GB of JSON.
#
# Inputs are synthetic SGLang-style traces (scripts/gen_trace.py: python_function frames,
# cpu_op, cudaLaunchKernel with ac2g flows, kernels, NCCL all-reduce, step spans), gzipped at
# level 6, written to $BENCH_DIR (default target/bench-trace; about 0.3 GB of inputs, plus a
# merged output of up to 4 GB while it runs). Python runs use $PYTHON (default
# .venv-peers/bin/python): json.load of every file, and SGLang's own ProfileMerger from the
# installed sglang package (scripts/bench_sglang_merge.py). Python needs about 6x the JSON size
# in memory, so it runs on the 1 GB set only.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv-peers/bin/python}
SIZES_GB=${SIZES_GB:-"1 4"}
BENCH_DIR=${BENCH_DIR:-target/bench-trace}
RUNS=${RUNS:-3}
mkdir -p "$BENCH_DIR"
cargo build --release -q -p loupe
LOUPE=${CARGO_TARGET_DIR:-target}/release/loupe

# measure LABEL CMD... : best wall time of $RUNS runs (1 for Python) and the largest peak RSS.
declare -A WALL RSS
measure() {
  local label=$1; shift
  local runs=$RUNS best="" peak=0 out
  [[ $label == python* ]] && runs=1
  for _ in $(seq "$runs"); do
    out=$(mktemp)
    /usr/bin/time -v -o "$out" "$@" >/dev/null 2>>"$BENCH_DIR/stderr.log"
    local w r
    w=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}' "$out")
    r=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out")
    rm -f "$out"
    if [[ -z $best ]] || awk "BEGIN {exit !($w < $best)}"; then best=$w; fi
    (( r > peak )) && peak=$r
  done
  WALL[$label]=$best
  RSS[$label]=$peak
}

# ratio BASELINE LABEL: how many times faster LABEL ran than BASELINE ("-" if not measured).
ratio() {
  if [[ -n ${WALL[$1]:-} ]]; then awk "BEGIN {printf \"%.1fx\", ${WALL[$1]} / ${WALL[$2]}}"; else echo -; fi
}

row() { # LABEL TOOL
  local mbps vs_gzip
  mbps=$(awk "BEGIN {printf \"%.0f\", $BYTES / 1e6 / ${WALL[$1]}}")
  vs_gzip=$(awk "BEGIN {printf \"%.2f\", ${WALL[gzip]} / ${WALL[$1]}}")
  printf '| %s | %.2f | %s | %s | %s | %s | %.0f |\n' "$2" "${WALL[$1]}" "$mbps" "$vs_gzip" \
    "$(ratio python_load "$1")" "$(ratio python_merge "$1")" "$(awk "BEGIN {print ${RSS[$1]} / 1024}")"
}

for gb in $SIZES_GB; do
  ranks=$(( gb == 1 ? 2 : 4 ))
  mb=$(( gb * 1000 / ranks + 20 ))
  files=()
  for ((r = 0; r < ranks; r++)); do
    f="$BENCH_DIR/bench${gb}g-TP-$r.trace.json.gz"
    if [[ ! -s $f ]]; then
      "$PYTHON" scripts/gen_trace.py - --mb "$mb" --rank "$r" 2>>"$BENCH_DIR/stderr.log" | gzip -6 > "$f"
    fi
    files+=("$f")
  done
  BYTES=0
  for f in "${files[@]}"; do BYTES=$(( BYTES + $(gzip -dc "$f" | wc -c) )); done
  GZBYTES=$(cat "${files[@]}" | wc -c)
  unset WALL RSS; declare -A WALL RSS
  measure gzip sh -c "gzip -dc ${files[*]} > /dev/null"
  measure summary "$LOUPE" trace summary "${files[@]}"
  if [[ -n ${LOUPE_BASE:-} ]]; then
    measure summary_base "$LOUPE_BASE" trace summary "${files[@]}"
  fi
  if [[ ${QUICK:-0} != 1 ]]; then
    measure merge_json "$LOUPE" trace merge "${files[@]}" -o "$BENCH_DIR/merged.json"
    measure merge_gz "$LOUPE" trace merge "${files[@]}" -o "$BENCH_DIR/merged.json.gz"
    rm -f "$BENCH_DIR/merged.json" "$BENCH_DIR/merged.json.gz"
  fi
  if [[ $gb == 1 && ${QUICK:-0} != 1 ]]; then
    measure python_load "$PYTHON" -c "
import gzip, json, sys
for p in sys.argv[1:]:
    with gzip.open(p, 'rb') as f:
        json.load(f)" "${files[@]}"
    measure python_merge "$PYTHON" scripts/bench_sglang_merge.py "$BENCH_DIR" "bench${gb}g"
    rm -f "$BENCH_DIR/merged-bench${gb}g.trace.json.gz"
  fi
  if [[ $gb == 1 && ${HTA:-1} == 1 ]]; then
    measure python_hta "$PYTHON" scripts/bench_hta.py "${files[@]}"
  fi
  echo
  printf '### %s GB: %d ranks, %.0f MB of JSON (%.0f MB gzipped), %s events\n\n' "$gb" "$ranks" \
    "$(awk "BEGIN {print $BYTES / 1e6}")" "$(awk "BEGIN {print $GZBYTES / 1e6}")" \
    "$(for f in "${files[@]}"; do gzip -dc "$f" | grep -c '"ph"'; done | awk '{s += $1} END {print s}')"
  echo '| tool | wall s | MB/s (JSON) | throughput / gzip -dc | x Python json.load | x SGLang ProfileMerger | peak RSS MB |'
  echo '|---|---|---|---|---|---|---|'
  row gzip 'gzip -dc > /dev/null'
  row summary 'loupe trace summary'
  if [[ -n ${WALL[summary_base]:-} ]]; then
    row summary_base "older loupe trace summary (the new one takes $(awk "BEGIN {printf \"%.2f\", ${WALL[summary]} / ${WALL[summary_base]}}")x its time)"
  fi
  if [[ -n ${WALL[merge_json]:-} ]]; then
    row merge_json 'loupe trace merge -o merged.json'
    row merge_gz 'loupe trace merge -o merged.json.gz'
  fi
  if [[ -n ${WALL[python_load]:-} ]]; then
    row python_load 'Python json.load'
    row python_merge 'SGLang ProfileMerger (Python)'
  fi
  if [[ -n ${WALL[python_hta]:-} ]]; then
    row python_hta "HTA 0.5.0 load + 5 analyses ($(ratio python_hta summary) of loupe's summary time)"
  fi
done
