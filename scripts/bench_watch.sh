#!/usr/bin/env bash
# loupe watch's costs: the CPU of scraping one server every 100 ms (target: under 1% of a
# core) and the live view's redraw at 8 servers x 8 DP ranks (target: under 5 ms).
#   scripts/bench_watch.sh [SECONDS]      (LOUPE: the binary, default target/release/loupe)
# The server is `loupe serve --dp-size 8 --enable-metrics` (8 ranks' series per scrape), idle:
# the scrape's cost does not depend on the server's load. CPU is the watch process's user +
# system time (from /proc) over its wall time, start-up included.
set -euo pipefail
SECS=${1:-30}
LOUPE=${LOUPE:-target/release/loupe}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$LOUPE" serve --model-path tiny --port "$PORT" --dp-size 8 --enable-metrics >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done
SAMPLES=$((SECS * 10))
OUT=$(mktemp)
/usr/bin/time -f '%U %S %e' -o "$OUT" "$LOUPE" watch "http://127.0.0.1:$PORT" --interval 0.1 \
  --samples "$SAMPLES" --no-view --jsonl /dev/null >/dev/null
read -r U S E <"$OUT"
rm -f "$OUT"
python3 -c "u,s,e=$U,$S,$E; print(f'scrape every 100 ms, {$SAMPLES} scrapes of 8 DP ranks: user {u:.2f} s + sys {s:.2f} s over {e:.2f} s = {100*(u+s)/e:.2f}% of one core')"
cargo bench -q -p loupe-cli-observe --bench watch_view -- 8 8 500
