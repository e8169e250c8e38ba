//! The few Perfetto trace messages loupe writes, derived by hand from
//! `protos/perfetto/trace/**.proto` (field numbers in `tag`). A `.pftrace` file is a sequence
//! of `Trace.packet` fields (tag 1, length-delimited), so packets can be appended one by one.
//!
//! Perfetto's protos are proto2 and its decoder reads repeated scalars unpacked, hence
//! `packed = "false"` on every repeated number.

#[derive(Clone, PartialEq, prost::Message)]
pub struct TracePacket {
    /// Nanoseconds on the default clock (BOOTTIME; converted traces use Unix time).
    #[prost(uint64, optional, tag = "8")]
    pub timestamp: Option<u64>,
    #[prost(uint32, optional, tag = "10")]
    pub trusted_packet_sequence_id: Option<u32>,
    #[prost(message, optional, tag = "11")]
    pub track_event: Option<TrackEvent>,
    #[prost(message, optional, tag = "12")]
    pub interned_data: Option<InternedData>,
    /// 1: SEQ_INCREMENTAL_STATE_CLEARED, 2: SEQ_NEEDS_INCREMENTAL_STATE.
    #[prost(uint32, optional, tag = "13")]
    pub sequence_flags: Option<u32>,
    #[prost(message, optional, tag = "60")]
    pub track_descriptor: Option<TrackDescriptor>,
}

pub const SEQ_INCREMENTAL_STATE_CLEARED: u32 = 1;
pub const SEQ_NEEDS_INCREMENTAL_STATE: u32 = 2;

#[derive(Clone, PartialEq, prost::Message)]
pub struct TrackDescriptor {
    #[prost(uint64, optional, tag = "1")]
    pub uuid: Option<u64>,
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    #[prost(message, optional, tag = "3")]
    pub process: Option<ProcessDescriptor>,
    #[prost(uint64, optional, tag = "5")]
    pub parent_uuid: Option<u64>,
    #[prost(message, optional, tag = "8")]
    pub counter: Option<CounterDescriptor>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ProcessDescriptor {
    #[prost(int32, optional, tag = "1")]
    pub pid: Option<i32>,
    #[prost(string, optional, tag = "6")]
    pub process_name: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CounterDescriptor {}

/// TrackEvent.Type
pub const SLICE_BEGIN: i32 = 1;
pub const SLICE_END: i32 = 2;
pub const INSTANT: i32 = 3;
pub const COUNTER: i32 = 4;

#[derive(Clone, PartialEq, prost::Message)]
pub struct TrackEvent {
    #[prost(uint64, repeated, packed = "false", tag = "3")]
    pub category_iids: Vec<u64>,
    #[prost(message, repeated, tag = "4")]
    pub debug_annotations: Vec<DebugAnnotation>,
    #[prost(int32, optional, tag = "9")]
    pub r#type: Option<i32>,
    #[prost(uint64, optional, tag = "10")]
    pub name_iid: Option<u64>,
    #[prost(uint64, optional, tag = "11")]
    pub track_uuid: Option<u64>,
    #[prost(double, optional, tag = "44")]
    pub double_counter_value: Option<f64>,
    #[prost(fixed64, repeated, packed = "false", tag = "47")]
    pub flow_ids: Vec<u64>,
    #[prost(fixed64, repeated, packed = "false", tag = "48")]
    pub terminating_flow_ids: Vec<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DebugAnnotation {
    #[prost(bool, optional, tag = "2")]
    pub bool_value: Option<bool>,
    #[prost(uint64, optional, tag = "3")]
    pub uint_value: Option<u64>,
    #[prost(int64, optional, tag = "4")]
    pub int_value: Option<i64>,
    #[prost(double, optional, tag = "5")]
    pub double_value: Option<f64>,
    #[prost(string, optional, tag = "6")]
    pub string_value: Option<String>,
    #[prost(string, optional, tag = "9")]
    pub legacy_json_value: Option<String>,
    /// The name itself (tag 10); tag 1 is the interned name id. Writing the string on tag 1
    /// is a known encoder bug that "still parses but renders wrong".
    #[prost(string, optional, tag = "10")]
    pub name: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InternedData {
    #[prost(message, repeated, tag = "1")]
    pub event_categories: Vec<InternedName>,
    #[prost(message, repeated, tag = "2")]
    pub event_names: Vec<InternedName>,
}

/// `EventCategory` and `EventName` share this shape: `iid = 1`, `name = 2`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InternedName {
    #[prost(uint64, optional, tag = "1")]
    pub iid: Option<u64>,
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
}

/// The whole file, for decoding in tests.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Trace {
    #[prost(message, repeated, tag = "1")]
    pub packet: Vec<TracePacket>,
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn golden_field_numbers() {
        // DebugAnnotation.name on tag 10 (0x52 = 10 << 3 | 2), not tag 1.
        let d = DebugAnnotation {
            name: Some("a".into()),
            int_value: Some(1),
            ..Default::default()
        };
        assert_eq!(d.encode_to_vec(), [0x20, 0x01, 0x52, 0x01, b'a']);
        // Flow ids: unpacked fixed64 on tag 47 (47 << 3 | 1 = 377 = varint f9 02).
        let e = TrackEvent {
            flow_ids: vec![1, 2],
            ..Default::default()
        };
        let bytes = e.encode_to_vec();
        assert_eq!(&bytes[..3], &[0xf9, 0x02, 0x01]);
        assert_eq!(bytes.len(), 2 * (2 + 8));
        // TrackDescriptor on TracePacket tag 60 (60 << 3 | 2 = 482 = varint e2 03), parent_uuid
        // on tag 5.
        let p = TracePacket {
            track_descriptor: Some(TrackDescriptor {
                parent_uuid: Some(7),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(p.encode_to_vec(), [0xe2, 0x03, 0x02, 0x28, 0x07]);
        // Negative int32 pids are sign-extended to ten bytes, not masked to 32 bits.
        let pd = ProcessDescriptor {
            pid: Some(-1),
            ..Default::default()
        };
        assert_eq!(pd.encode_to_vec().len(), 1 + 10);
    }
}
