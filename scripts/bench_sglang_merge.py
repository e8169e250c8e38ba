#!/usr/bin/env python3
"""The merge approach of SGLang's ProfileMerger (srt/utils/profile_merger.py), re-implemented
from its description (spec/sglang-profiling.md §9) as the baseline for `loupe trace merge`:
load every rank's whole document, relabel every pid as "[TPxx] pid", concatenate the events
and deviceProperties, keep the first file's other keys, json.dumps, gzip, then re-open and
re-parse the result to count its events.

    bench_sglang_merge.py OUT.json.gz RANK_FILES...
"""
import gzip
import json
import re
import sys
import time


def label(path):
    parts = []
    for dim in ("TP", "DP", "PP", "EP"):
        m = re.search(dim + r"-(\d+)", path)
        if m:
            parts.append("%s%02d" % (dim, int(m.group(1))))
    return "[%s]" % ("-".join(parts) or "Unknown")


def main():
    out, files = sys.argv[1], sys.argv[2:]
    t0 = time.time()
    merged = None
    events = []
    devices = []
    for path in files:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            doc = json.load(f)
        lab = label(path)
        for ev in doc.get("traceEvents", []):
            if ev.get("name") == "process_sort_index" and isinstance(ev.get("pid"), int) and ev["pid"] < 1000:
                ev.setdefault("args", {})["sort_index"] = ev["pid"]
            ev["pid"] = "%s %s" % (lab, ev.get("pid"))
            events.append(ev)
        devices.extend(doc.get("deviceProperties", []))
        if merged is None:
            merged = {k: v for k, v in doc.items() if k not in ("traceEvents", "deviceProperties")}
        del doc
    merged["traceEvents"] = events
    merged["deviceProperties"] = devices
    with gzip.open(out, "wb") as f:
        f.write(json.dumps(merged).encode())
    del merged, events
    with gzip.open(out, "rb") as f:
        count = len(json.load(f)["traceEvents"])
    print("merged %d files, %d events in %.1f s" % (len(files), count, time.time() - t0), file=sys.stderr)


if __name__ == "__main__":
    main()
