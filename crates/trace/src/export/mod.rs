//! Writers and the operations that produce traces: Chrome JSON ([`json`]), merging
//! ([`merge`]), slicing ([`slice`]), all through [`output::AtomicOutput`] (temporary name,
//! rename when complete).

pub mod json;
pub mod merge;
pub mod output;
pub mod slice;
