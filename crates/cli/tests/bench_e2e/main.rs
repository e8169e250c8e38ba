//! `loupe bench` and `loupe bench --profile` end to end, in-process: each test's command line
//! goes through the cli's bench flags and command (`loupe_cli::cmd::bench`), against
//! `loupe serve` (and, for faults a real server cannot be made to produce on demand, a small
//! scripted server) on real sockets.

mod arrivals;
mod backends;
mod common;
mod datasets;
mod faults;
mod images;
mod mock;
mod more_backends;
mod multiturn;
mod observer;
mod profile;
mod search;
mod timed;
mod trace_datasets;
