//! Writers and the operations that produce traces: Chrome JSON ([`json`]), Perfetto protobuf
//! ([`perfetto`]), merging ([`merge`]), slicing ([`slice`]), all through
//! [`output::AtomicOutput`] (temporary name, rename when complete).

pub mod json;
pub mod merge;
pub mod output;
pub use output::write_atomic;
pub mod perfetto;
pub mod slice;
