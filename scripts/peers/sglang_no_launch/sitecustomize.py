# Put on PYTHONPATH to run `python -m sglang.benchmark.one_batch_server --base-url ...` with
# the peers venv: that module imports SGLang's server launcher (uvicorn, fastapi, zmq, ...),
# which the peers venv does not install and which --base-url never calls. This stands in for
# the launcher module only; the benchmark's own code runs unchanged.
import sys
import types

_launcher = types.ModuleType("sglang.srt.entrypoints.http_server")


def launch_server(*args, **kwargs):
    raise RuntimeError("no SGLang server launcher in this environment: pass --base-url")


_launcher.launch_server = launch_server
sys.modules["sglang.srt.entrypoints.http_server"] = _launcher
