//! Writers and the operations that produce traces: Chrome JSON ([`json`]), Perfetto protobuf
//! ([`perfetto`]), merging ([`merge`]), slicing ([`slice`](mod@slice)), all through
//! [`output::AtomicOutput`] (temporary name, rename when complete; an output that is one of
//! the inputs is refused). [`write_atomic`] is the same rule for any whole file.

pub mod json;
pub mod merge;
pub mod output;
pub use output::write_atomic;
pub mod parts;
pub mod perfetto;
pub mod slice;

use std::path::Path;

/// The trace formats a conversion writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceFormat {
    /// Chrome / Kineto JSON ([`json::convert`]).
    Json,
    /// Perfetto's native protobuf ([`perfetto::convert`]).
    Perfetto,
}

impl TraceFormat {
    /// The format an output's name asks for: Perfetto for `.pftrace`, `.perfetto-trace` and
    /// `.pb`; JSON for anything else (gzipped when the name ends in `.gz`).
    pub fn for_output(path: &Path) -> TraceFormat {
        let name = path.to_string_lossy();
        if [".pftrace", ".perfetto-trace", ".pb"]
            .iter()
            .any(|s| name.ends_with(s))
        {
            TraceFormat::Perfetto
        } else {
            TraceFormat::Json
        }
    }
}
