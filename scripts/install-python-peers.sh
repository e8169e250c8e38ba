#!/usr/bin/env bash
# Python peers for loupe's side-by-side benchmarks and reference checks, in a virtual
# environment (default .venv-peers; set VENV to change). Not needed to build or test loupe.
# Gives: python -m sglang.benchmark.serving and python -m sglang.benchmark.rust_client
# (SGLang's load generators), SGLang's ProfileMerger (scripts/bench_sglang_merge.py), torch +
# transformers + safetensors (the reference forward pass and
# scripts/make_reference_checkpoints.py), and Perfetto's protobuf definitions
# (scripts/check_pftrace.py, scripts/perfetto_fields.py). Downloads a few GB (torch wheels).
set -eu
venv=${VENV:-.venv-peers}
[ -d "$venv" ] || python3 -m venv "$venv"
. "$venv/bin/activate"
pip install -q --upgrade pip
pip install -q torch transformers safetensors numpy aiohttp tqdm requests pybase64
# The sglang wheel carries both load generators; install it without its GPU stack, plus the
# modules its benchmark entry points import at start-up.
tmp=$(mktemp -d)
pip download -q --no-deps -d "$tmp" sglang==0.5.23
pip install -q --no-deps "$tmp"/sglang-*.whl
pip install -q orjson psutil pillow starlette msgspec pyzmq ipython datasets apache-tvm-ffi tabulate \
  sentencepiece compressed-tensors gguf
pip install -q perfetto==0.59.1 protobuf
python -m sglang.benchmark.serving --help >/dev/null
python -c "from perfetto.protos.perfetto.trace import perfetto_trace_pb2"
echo "peers ready in $venv"
