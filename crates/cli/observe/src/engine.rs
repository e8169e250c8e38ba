//! `--engine`, shared by every command that speaks an engine's control protocol.

use loupe_client::Engine;
use loupe_client::engine::UnknownEngine;

/// The value parser of `--engine sglang|vllm|trtllm|dynamo` (unset: detected from the server).
pub fn parse(s: &str) -> Result<Engine, UnknownEngine> {
    s.parse()
}
