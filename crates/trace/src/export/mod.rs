//! Writers and the operations that produce traces: Chrome JSON ([`json`]), merging
//! ([`merge`]), all through [`output::AtomicOutput`] (temporary name, rename when complete).

pub mod json;
pub mod merge;
pub mod output;
