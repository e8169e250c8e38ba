#!/usr/bin/env python3
"""SGLang's own trace merger, run the way SGLang runs it, as the baseline for `loupe trace merge`:
`ProfileMerger(output_dir, profile_id).merge_chrome_traces()`, then `get_merge_summary()`
(sglang/srt/managers/scheduler_components/profiler_manager.py calls both after a profile:
json.load of every rank's whole file, pids relabelled "[TPxx] pid", events concatenated,
json.dumps, gzip, then the merged file parsed again to count its events).

The class is SGLang's code, from the installed sglang package (scripts/install-python-peers.sh).
Its module is loaded from its file, so sglang's package imports (torch and the rest) are not
part of the time; it needs only the standard library.

    bench_sglang_merge.py DIR PROFILE_ID
        merges DIR/PROFILE_ID*.trace.json.gz (files with "TP-" in the name, SGLang's rule)
        into DIR/merged-PROFILE_ID.trace.json.gz
"""
import importlib.util
import os
import sys
import time


def load_profile_merger():
    spec = importlib.util.find_spec("sglang")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("sglang is not installed in this Python (scripts/install-python-peers.sh installs it)")
    path = os.path.join(spec.submodule_search_locations[0], "srt", "utils", "profile_merger.py")
    module_spec = importlib.util.spec_from_file_location("sglang_profile_merger", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.ProfileMerger


def main():
    out_dir, profile_id = sys.argv[1], sys.argv[2]
    profile_merger = load_profile_merger()
    t0 = time.time()
    merger = profile_merger(out_dir, profile_id)
    merged = merger.merge_chrome_traces()
    summary = merger.get_merge_summary()
    if "error" in summary:
        sys.exit(summary["error"])
    print("%s: %d files, %d events in %.1f s" % (merged, summary["total_files"], summary["total_events"],
                                                 time.time() - t0), file=sys.stderr)


if __name__ == "__main__":
    main()
