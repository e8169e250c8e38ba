//! `loupe bench` and `loupe profile` end to end, against `loupe serve` (and, for faults a real
//! server cannot be made to produce on demand, a small scripted server) on real sockets.

mod arrivals;
mod backends;
mod common;
mod datasets;
mod faults;
mod mock;
mod profile;
