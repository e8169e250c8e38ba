#!/usr/bin/env bash
# The HTML report's budgets (docs/PERFORMANCE.md, "HTML reports"), in one run:
#  1. page size and build time of the bench page for 10,000 and 100,000 synthetic requests,
#     and of a 16-run sweep page (1,000 and 10,000 requests a run)
#     (crates/cli/benches/report_page.rs, which writes the pages to $BENCH_DIR);
#  2. the browser's load-to-ready time of those pages: headless Chromium, the page's own
#     `data-ready-ms` (performance.now() when the last chart is drawn, from navigation start);
#  3. `loupe trace summary --html` beside `loupe trace summary` on the same 1 GB of traces
#     (2 ranks, scripts/gen_trace.py, as scripts/bench_trace.sh makes them).
#
#   scripts/bench_report.sh            # RUNS=5 browser loads, RUNS_TRACE=3 trace runs
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-target/bench-report}
TRACE_DIR=${TRACE_DIR:-target/bench-trace}
RUNS=${RUNS:-5}
RUNS_TRACE=${RUNS_TRACE:-3}
CHROMIUM=${LOUPE_CHROMIUM:-chromium}
PYTHON=${PYTHON:-python3}
mkdir -p "$BENCH_DIR" "$TRACE_DIR"
cargo build --release -q -p loupe
LOUPE=target/release/loupe

echo "### Page size and build time"
echo
cargo bench -q -p loupe --bench report_page

echo
echo "### Load to ready in headless Chromium (ms; best and median of $RUNS)"
echo
echo "| page | best | median |"
echo "|---|---:|---:|"
for page in run10k run100k sweep16x1k sweep16x10k; do
  for _ in $(seq "$RUNS"); do
    rm -rf "$BENCH_DIR/profile"
    "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run \
      --user-data-dir="$BENCH_DIR/profile" --window-size=1280,900 \
      --dump-dom "file://$PWD/$BENCH_DIR/$page.html" 2>/dev/null |
      grep -o 'data-ready-ms="[0-9]*"' | tr -dc '0-9'
    echo
  done | sort -n | awk -v p="$page" '{a[NR] = $1} END {printf "| %s | %d | %d |\n", p, a[1], a[int((NR + 1) / 2)]}'
done

# Best wall time of RUNS_TRACE runs of a command, in seconds.
best() {
  local b=""
  for _ in $(seq "$RUNS_TRACE"); do
    local t0 t1 w
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    w=$(awk "BEGIN {print $t1 - $t0}")
    if [[ -z $b ]] || awk "BEGIN {exit !($w < $b)}"; then b=$w; fi
  done
  echo "$b"
}

files=()
for r in 0 1; do
  f="$TRACE_DIR/bench1g-TP-$r.trace.json.gz"
  if [[ ! -s $f ]]; then
    "$PYTHON" scripts/gen_trace.py - --mb 520 --rank "$r" | gzip -6 > "$f"
  fi
  files+=("$f")
done
plain=$(best "$LOUPE" trace summary "${files[@]}")
html=$(best "$LOUPE" trace summary "${files[@]}" --html "$BENCH_DIR/trace-summary.html")
ranks_plain=$(best "$LOUPE" trace ranks "${files[@]}")
ranks_html=$(best "$LOUPE" trace ranks "${files[@]}" --html "$BENCH_DIR/trace-ranks.html")
echo
echo "### Building the page from 1 GB of traces (s, best of $RUNS_TRACE)"
echo
echo "| command | without --html | with --html | ratio | page bytes |"
echo "|---|---:|---:|---:|---:|"
printf '| trace summary | %.2f | %.2f | %.3fx | %d |\n' "$plain" "$html" \
  "$(awk "BEGIN {print $html / $plain}")" "$(wc -c < "$BENCH_DIR/trace-summary.html")"
printf '| trace ranks | %.2f | %.2f | %.3fx | %d |\n' "$ranks_plain" "$ranks_html" \
  "$(awk "BEGIN {print $ranks_html / $ranks_plain}")" "$(wc -c < "$BENCH_DIR/trace-ranks.html")"
