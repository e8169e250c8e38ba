//! `loupe watch`'s logic, without a terminal: a server's `/metrics` read into per-DP-rank
//! counters ([`snapshot`]), two scrapes turned into a point of rates and imbalance
//! ([`point`]), and the rules that decide when to capture a profile ([`trigger`]). Time is
//! always given, never read, so the rules are tested on explicit sample times.

pub mod point;
pub mod snapshot;
pub mod trigger;

pub use point::{RankPoint, ServerPoint, server_imbalance};
pub use snapshot::{RankCounters, Snapshot};
pub use trigger::{Fire, Metric, Rule, RuleError, Watcher};
