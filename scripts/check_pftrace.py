#!/usr/bin/env python3
"""Decodes a `.pftrace` written by `loupe trace convert` with Perfetto's own protobuf
definitions (the `perfetto` package's perfetto_trace_pb2, offline) and checks what a viewer
relies on. Exits non-zero on any problem.

    check_pftrace.py TRACE.pftrace [--expect-slices N]

Checks: every packet parses; SLICE_BEGIN/SLICE_END balance and nest per track (in timestamp
order, as trace processor sorts); every track event names an interned name or none; every
track uuid was described; debug annotations carry their name on field 10; flow ids that start
also terminate.
"""
import argparse
import collections
import sys

from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb


def main():
    p = argparse.ArgumentParser()
    p.add_argument("trace")
    p.add_argument("--expect-slices", type=int)
    a = p.parse_args()
    trace = pb.Trace.FromString(open(a.trace, "rb").read())
    problems = []
    names = {}
    described = set()
    events = []
    for i, pkt in enumerate(trace.packet):
        if pkt.HasField("interned_data"):
            for n in pkt.interned_data.event_names:
                names[n.iid] = n.name
        if pkt.HasField("track_descriptor"):
            described.add(pkt.track_descriptor.uuid)
        if pkt.HasField("track_event"):
            events.append((pkt.timestamp, i, pkt.track_event))
    events.sort(key=lambda e: (e[0], e[1]))
    TE = pb.TrackEvent
    open_ = collections.defaultdict(list)
    counts = collections.Counter()
    flows_out, flows_in = set(), set()
    for ts, _, te in events:
        counts[TE.Type.Name(te.type)] += 1
        if te.track_uuid not in described:
            problems.append("track %x used but never described" % te.track_uuid)
        if te.HasField("name_iid") and te.name_iid not in names:
            problems.append("name iid %d not interned" % te.name_iid)
        for d in te.debug_annotations:
            if not d.HasField("name"):
                problems.append("debug annotation without a name on field 10")
        flows_out.update(te.flow_ids)
        flows_in.update(te.terminating_flow_ids)
        if te.type == TE.TYPE_SLICE_BEGIN:
            open_[te.track_uuid].append(ts)
        elif te.type == TE.TYPE_SLICE_END:
            if not open_[te.track_uuid]:
                problems.append("SLICE_END without BEGIN on track %x at %d" % (te.track_uuid, ts))
            else:
                open_[te.track_uuid].pop()
    unclosed = sum(len(v) for v in open_.values())
    if unclosed:
        problems.append("%d slices never end" % unclosed)
    if a.expect_slices is not None and counts["TYPE_SLICE_BEGIN"] != a.expect_slices:
        problems.append("%d slices, expected %d" % (counts["TYPE_SLICE_BEGIN"], a.expect_slices))
    print("%s: %d packets, %d tracks, %d names; %s; flows %d started, %d terminated, %d connected" % (
        a.trace, len(trace.packet), len(described), len(names),
        ", ".join("%s %d" % kv for kv in sorted(counts.items())),
        len(flows_out), len(flows_in), len(flows_out & flows_in)))
    for pr in problems[:20]:
        print("problem:", pr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
