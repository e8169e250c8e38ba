#!/usr/bin/env python3
"""Writes the numbers and types of the Perfetto trace fields loupe's `.pftrace` writer uses, as
Perfetto's own protobuf definitions give them (the `perfetto` PyPI package's
perfetto_trace_pb2, offline). crates/trace/tests/perfetto.rs checks loupe's hand-derived
messages (crates/trace/src/export/perfetto/proto.rs) against this file, so the check runs
without Python; scripts/check_pftrace.py decodes whole files with the same definitions.

    scripts/perfetto_fields.py > crates/trace/tests/data/perfetto_fields.json
"""
import importlib.metadata
import json

from google.protobuf.descriptor import FieldDescriptor
from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

# message -> the fields loupe writes
USED = {
    "Trace": ["packet"],
    "TracePacket": ["timestamp", "trusted_packet_sequence_id", "track_event", "interned_data",
                    "sequence_flags", "track_descriptor"],
    "TrackDescriptor": ["uuid", "name", "process", "parent_uuid", "counter"],
    "ProcessDescriptor": ["pid", "process_name"],
    "TrackEvent": ["category_iids", "debug_annotations", "type", "name_iid", "track_uuid",
                   "double_counter_value", "flow_ids", "terminating_flow_ids"],
    "DebugAnnotation": ["bool_value", "uint_value", "int_value", "double_value", "string_value",
                        "legacy_json_value", "name"],
    "InternedData": ["event_categories", "event_names"],
    "EventName": ["iid", "name"],
    "EventCategory": ["iid", "name"],
}
ENUMS = {"TrackEvent.Type": pb.TrackEvent.Type, "TracePacket.SequenceFlags": pb.TracePacket.SequenceFlags}

TYPE_NAMES = {v: k[len("TYPE_"):].lower() for k, v in vars(FieldDescriptor).items() if k.startswith("TYPE_")}


def main():
    messages = {}
    for name, fields in USED.items():
        desc = getattr(pb, name).DESCRIPTOR
        out = {}
        for f in fields:
            fd = desc.fields_by_name[f]
            out[f] = {
                "number": fd.number,
                "type": TYPE_NAMES[fd.type],
                "repeated": fd.is_repeated,
                "packed": fd.is_packed,
                "message": fd.message_type.name if fd.message_type else None,
            }
        messages[name] = out
    enums = {n: {k: v for k, v in e.items()} for n, e in ENUMS.items()}
    doc = {
        "source": "perfetto %s (PyPI): perfetto.protos.perfetto.trace.perfetto_trace_pb2"
                  % importlib.metadata.version("perfetto"),
        "messages": messages,
        "enums": enums,
    }
    print(json.dumps(doc, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
