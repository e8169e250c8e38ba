#!/usr/bin/env python3
"""HTA's own run of the analyses `loupe trace summary` reproduces, for scripts/bench_trace.sh:
HolisticTraceAnalysis reads a directory, so the given traces are linked into a temporary one.
Prints the wall time of loading and of the five analyses; peak memory comes from /usr/bin/time.

    python scripts/bench_hta.py TRACE...
"""
import os
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")


def main(files):
    from hta.trace_analysis import TraceAnalysis

    with tempfile.TemporaryDirectory() as d:
        for f in files:
            os.symlink(os.path.abspath(f), os.path.join(d, os.path.basename(f)))
        t0 = time.perf_counter()
        ta = TraceAnalysis(trace_dir=d)
        t1 = time.perf_counter()
        ranks = sorted(ta.t.traces)
        ta.get_temporal_breakdown(visualize=False)
        ta.get_idle_time_breakdown(ranks=ranks, visualize=False, show_idle_interval_stats=True)
        ta.get_comm_comp_overlap(visualize=False)
        ta.get_cuda_kernel_launch_stats(ranks=ranks, visualize=False)
        ta.get_gpu_kernel_breakdown(visualize=False)
        t2 = time.perf_counter()
    print(f"hta load {t1 - t0:.2f} s, analyses {t2 - t1:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
